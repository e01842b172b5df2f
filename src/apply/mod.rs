//! Stage 6 — the only module that touches a database (odbc-api): census, guards, rewrite in
//! one transaction, verification, history.
