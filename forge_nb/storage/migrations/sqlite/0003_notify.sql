-- v3: (Postgres adds an enqueue NOTIFY trigger here; SQLite watches PRAGMA data_version.)
SELECT 1;
