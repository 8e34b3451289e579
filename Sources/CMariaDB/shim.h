#ifndef SWITCHYARD_CMARIADB_SHIM_H
#define SWITCHYARD_CMARIADB_SHIM_H
#include <mysql.h>
#endif
