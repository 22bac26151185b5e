-- v10: shipped code (issue 16). Handlers published by App(ship_code=True), cloudpickled by
-- value and signed (HMAC-SHA256 under FORGE_NB_CODE_KEY). A row is immutable: its version is
-- the content hash of kind + code, so publishing the same code twice is a no-op.
CREATE TABLE forge_nb_code (
    version text COLLATE "C" PRIMARY KEY,
    kind text COLLATE "C" NOT NULL,
    python text NOT NULL,              -- '3.11': a worker runs only code of its own minor
    forge_nb_version text NOT NULL,
    signature text NOT NULL,           -- hex HMAC-SHA256 over the other fields and the code
    code bytea NOT NULL,
    created_at double precision NOT NULL
);
CREATE INDEX forge_nb_code_kind ON forge_nb_code (kind, created_at);

-- The code version current when the job was enqueued (NULL: the kind's handler wherever it
-- runs, as before). Nullable, no default: a catalog-only change, no table rewrite.
ALTER TABLE forge_nb_jobs ADD COLUMN code_version text COLLATE "C";
