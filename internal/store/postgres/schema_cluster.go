package postgres

// nodeSetting is the session setting that carries this node's name
// (set on every connection by Open); the owner column's default reads it.
const nodeSetting = "posthorn.node"

// clusterSchema is the cluster part of the schema (see migrations in
// schema.go): which node holds which pending delivery, the nodes and
// their heartbeats, the throttle state nodes share, and the function
// that takes a destination's connection slot.
//
// A pending delivery belongs to the node whose scheduler holds it
// (owner); the node that accepts a message owns its deliveries from the
// insert on (the default reads the session's posthorn.node). A node
// whose heartbeat stops loses its deliveries: a live node sets their
// owner back to NULL and any node may claim them (cluster.go).
const clusterSchema = `
ALTER TABLE deliveries ADD COLUMN owner text DEFAULT nullif(current_setting('posthorn.node', true), '');
CREATE INDEX deliveries_unowned ON deliveries (next_attempt_at) WHERE owner IS NULL AND state IN ('scheduled','queued','deferred');
CREATE INDEX deliveries_owner ON deliveries (owner, state) WHERE state IN ('scheduled','queued','sending','deferred');

CREATE TABLE nodes (
	name text PRIMARY KEY,
	host text NOT NULL DEFAULT '',
	pid integer NOT NULL DEFAULT 0,
	version text NOT NULL DEFAULT '',
	started_at bigint NOT NULL,
	heartbeat_at bigint NOT NULL,
	stopped_at bigint NOT NULL DEFAULT 0
);

CREATE TABLE destination_throttles (
	destination text PRIMARY KEY,
	node text NOT NULL,
	connections integer NOT NULL,
	rate_per_minute double precision NOT NULL,
	paused_until bigint NOT NULL,
	reason text NOT NULL DEFAULT '',
	updated_at bigint NOT NULL
);
CREATE INDEX destination_throttles_updated ON destination_throttles (updated_at);

-- posthorn_take_slot takes the first free connection slot of a
-- destination (advisory lock (k, i), i < n) for this session, skipping
-- the slots it already holds (session locks are re-entrant); -1 when all
-- n are taken. A node that dies loses its session and so its slots.
-- slot_wants records the last time a node found every connection slot
-- of a destination taken: holders give theirs up only while another node
-- waits (Contended).
CREATE TABLE slot_wants (
	dest_key integer NOT NULL,
	node text NOT NULL,
	at bigint NOT NULL,
	PRIMARY KEY (dest_key, node)
);

CREATE FUNCTION posthorn_take_slot(k integer, n integer, skip integer[]) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 0..n-1 LOOP
		IF NOT (i = ANY(skip)) AND pg_try_advisory_lock(k, i) THEN
			RETURN i;
		END IF;
	END LOOP;
	RETURN -1;
END $$;
`
