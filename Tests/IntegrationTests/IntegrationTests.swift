import Testing

/// Every test here starts real MariaDB servers; they run one at a time (the machine has two cores).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct IntegrationTests {}
