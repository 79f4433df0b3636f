#ifndef CSQLITESETTINGS_H
#define CSQLITESETTINGS_H

/// Turns off SQLite's process-wide memory statistics. Every SQLite allocation otherwise takes
/// one global mutex, which the view builders (one thread per view) contend on. Must run before
/// SQLite is first used in the process; returns SQLITE_OK, or SQLITE_MISUSE if it was too late.
int tributary_sqlite_disable_memstatus(void);

#endif
