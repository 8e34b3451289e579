/// The rows of one result set. Values are the server's text, NULL as nil.
public struct QueryResult: Sendable, Hashable {
    public var columns: [String]
    public var rows: [ResultRow]
    /// Rows changed by a statement without a result set.
    public var affectedRows: UInt64

    public init(columns: [String], rows: [ResultRow], affectedRows: UInt64 = 0) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
    }
}

/// One row, addressable by column name or position.
public struct ResultRow: Sendable, Hashable {
    public let columns: [String]
    public let values: [String?]

    public init(columns: [String], values: [String?]) {
        self.columns = columns
        self.values = values
    }

    /// The value of `column` (exact name first, then case-insensitive); nil for NULL or no such column.
    public subscript(_ column: String) -> String? {
        if let index = columns.firstIndex(of: column) { return values[index] }
        let lower = column.lowercased()
        if let index = columns.firstIndex(where: { $0.lowercased() == lower }) { return values[index] }
        return nil
    }

    public subscript(_ index: Int) -> String? { index < values.count ? values[index] : nil }

    /// Column name → value, NULL as nil.
    public var dictionary: [String: String?] {
        var result: [String: String?] = [:]
        for (column, value) in zip(columns, values) { result[column] = .some(value) }
        return result
    }
}
