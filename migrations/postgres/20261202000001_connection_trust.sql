-- Trust (issue 11): a connection is pinned to the organization its key reached first, a new
-- key or base URL must be tested before use, and the sealed key is bound to the base URL
-- (key_binding 2; rows still at 1 are re-sealed at start-up, see service::rekey).
ALTER TABLE connections ADD COLUMN organization_id TEXT;
ALTER TABLE connections ADD COLUMN test_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE connections ADD COLUMN key_binding BIGINT NOT NULL DEFAULT 1;

-- Grants outlive their connection: deleting one (refused while grants are live) keeps every
-- grant record, with the column cleared; `data` still names the connection. The foreign key
-- stays so that a grant inserted while its connection is being deleted waits for, and then
-- fails on, the delete.
ALTER TABLE grants ALTER COLUMN connection_id DROP NOT NULL;
ALTER TABLE grants DROP CONSTRAINT grants_connection_id_fkey;
ALTER TABLE grants ADD CONSTRAINT grants_connection_id_fkey FOREIGN KEY (connection_id)
    REFERENCES connections (connection_id) ON DELETE SET NULL;
