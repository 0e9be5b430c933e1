-- The changes feed in commit order. `change_id` is handed out when a row is inserted, so two
-- publishing transactions could commit their changes in the other order, and a reader polling
-- with `after=` in between would skip the earlier ids for good. The feed's public id is now
-- `seq`, assigned just before the commit under one row lock (`changes_head`), held to the
-- commit: whoever sees seq N has every seq below it visible too, and seqs are dense (the head
-- moves back if the transaction rolls back). `previous_seq` is the connection's previous
-- change, so a reader can check its copy of one connection's feed is whole.
-- Rows from before keep their id as seq (the order they were read in).
ALTER TABLE inventory_changes
    ADD COLUMN seq          BIGINT,
    ADD COLUMN previous_seq BIGINT;
UPDATE inventory_changes SET seq = change_id, previous_seq = x.previous
FROM (SELECT change_id AS id,
             LAG(change_id) OVER (PARTITION BY connection_id ORDER BY change_id) AS previous
      FROM inventory_changes) x
WHERE x.id = inventory_changes.change_id;
CREATE UNIQUE INDEX inventory_changes_seq ON inventory_changes (seq);
DROP INDEX inventory_changes_connection;
CREATE INDEX inventory_changes_connection ON inventory_changes (connection_id, seq);

CREATE TABLE changes_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO changes_head (id, seq) SELECT 1, COALESCE(MAX(change_id), 0) FROM inventory_changes;
