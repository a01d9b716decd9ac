package postgres

// coreSchema is the core part of the schema (see migrations in schema.go):
// messages, deliveries, attempts, the event log and its rollups,
// suppressions and idempotency keys.
//
// Times are bigint Unix milliseconds, 0 for none, as in the SQLite store,
// so both backends round times the same way.
//
// The deliveries table refuses unknown states and lanes with CHECK
// constraints. Their lists are written out (a migration, once released,
// never changes); TestSchemaChecksMatchStore proves they equal
// store.AllStates and the lanes.
//
// Indexes on events end in id, so that a page of the activity log along
// one equality (message, recipient, domain, tenant, tenant and type) is a
// short walk of one index in ID order, never a sort of all that match.
// messages.seq is the acceptance order (the cursor of body pruning and of
// the observer's MessagesAfter).
const coreSchema = `
CREATE TABLE messages (
	id text PRIMARY KEY,
	seq bigserial NOT NULL UNIQUE,
	tenant_id text NOT NULL,
	sender text NOT NULL,
	lane text NOT NULL,
	source text NOT NULL,
	smtp_user text NOT NULL DEFAULT '',
	client_ip text NOT NULL DEFAULT '',
	size integer NOT NULL,
	message_id_hdr text NOT NULL DEFAULT '',
	subject text NOT NULL DEFAULT '',
	created_at bigint NOT NULL,
	send_at bigint NOT NULL DEFAULT 0,
	smtputf8 boolean NOT NULL DEFAULT false,
	eightbit boolean NOT NULL DEFAULT false,
	sandbox boolean NOT NULL DEFAULT false,
	tags text[] NOT NULL DEFAULT '{}',
	metadata text NOT NULL DEFAULT '',
	body bytea NOT NULL,
	body_pruned_at bigint NOT NULL DEFAULT 0,
	-- the signing domain, set at acceptance, and the DKIM-Signature field
	-- computed after the commit (dkim.go): pending while it is empty
	dkim_domain text NOT NULL DEFAULT '',
	dkim_signature bytea NOT NULL DEFAULT ''::bytea
);
CREATE INDEX messages_tenant_created ON messages (tenant_id, created_at);
CREATE INDEX messages_tags ON messages USING gin (tags);

CREATE TABLE idempotency_keys (
	tenant_id text NOT NULL,
	key text NOT NULL,
	request_hash text NOT NULL,
	message_id text NOT NULL,
	response bytea NOT NULL,
	created_at bigint NOT NULL,
	expires_at bigint NOT NULL,
	PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);

CREATE TABLE deliveries (
	id bigserial PRIMARY KEY,
	message_id text NOT NULL,
	tenant_id text NOT NULL,
	recipient text NOT NULL,
	domain text NOT NULL,
	lane text NOT NULL CHECK (lane IN ('high','normal','low')),
	state text NOT NULL CHECK (state IN ('scheduled','queued','sending','deferred','held','delivered','bounced','soft_bounced','dead_letter','suppressed','cancelled')),
	attempts integer NOT NULL DEFAULT 0,
	created_at bigint NOT NULL,
	first_attempt_at bigint NOT NULL DEFAULT 0,
	last_attempt_at bigint NOT NULL DEFAULT 0,
	next_attempt_at bigint NOT NULL DEFAULT 0,
	expires_at bigint NOT NULL,
	last_code integer NOT NULL DEFAULT 0,
	last_enhanced text NOT NULL DEFAULT '',
	last_text text NOT NULL DEFAULT '',
	last_class text NOT NULL DEFAULT '',
	last_phase text NOT NULL DEFAULT '',
	last_mx text NOT NULL DEFAULT '',
	last_ip text NOT NULL DEFAULT '',
	provider text NOT NULL DEFAULT '',
	updated_at bigint NOT NULL
) WITH (fillfactor = 90);
-- One partial index serves the pending states (LoadPending) and the
-- queue's shape (the observer): every state change updates each index.
CREATE INDEX deliveries_shape ON deliveries (state, lane, created_at) WHERE state IN ('scheduled','queued','sending','deferred','held','dead_letter');
CREATE INDEX deliveries_message ON deliveries (message_id);
CREATE INDEX deliveries_domain ON deliveries (domain, id);
CREATE INDEX deliveries_recipient ON deliveries (recipient);

CREATE TABLE attempts (
	id bigserial PRIMARY KEY,
	delivery_id bigint NOT NULL,
	message_id text NOT NULL,
	n integer NOT NULL,
	started_at bigint NOT NULL,
	duration_us bigint NOT NULL,
	mx text NOT NULL DEFAULT '',
	ip text NOT NULL DEFAULT '',
	source_ip text NOT NULL DEFAULT '',
	tls boolean NOT NULL DEFAULT false,
	code integer NOT NULL DEFAULT 0,
	enhanced text NOT NULL DEFAULT '',
	text text NOT NULL DEFAULT '',
	class text NOT NULL,
	phase text NOT NULL DEFAULT '',
	error text NOT NULL DEFAULT '',
	tls_version text NOT NULL DEFAULT '',
	tls_cipher text NOT NULL DEFAULT '',
	tls_policy text NOT NULL DEFAULT '',
	tls_result text NOT NULL DEFAULT ''
);
CREATE INDEX attempts_message ON attempts (message_id);

CREATE TABLE events (
	id bigserial PRIMARY KEY,
	at bigint NOT NULL,
	type text NOT NULL,
	tenant_id text NOT NULL,
	message_id text NOT NULL,
	delivery_id bigint NOT NULL DEFAULT 0,
	recipient text NOT NULL DEFAULT '',
	attempt integer NOT NULL DEFAULT 0,
	mx text NOT NULL DEFAULT '',
	code integer NOT NULL DEFAULT 0,
	enhanced text NOT NULL DEFAULT '',
	text text NOT NULL DEFAULT '',
	detail text NOT NULL DEFAULT '',
	domain text NOT NULL DEFAULT '',
	destination text NOT NULL DEFAULT ''
);
CREATE INDEX events_message ON events (message_id, id);
CREATE INDEX events_recipient ON events (recipient, id);
CREATE INDEX events_domain ON events (domain, id);
CREATE INDEX events_tenant ON events (tenant_id, id);
CREATE INDEX events_tenant_type ON events (tenant_id, type, id);

CREATE TABLE rollup_daily (
	tenant_id text NOT NULL, day bigint NOT NULL, domain text NOT NULL, destination text NOT NULL,
	accepted bigint NOT NULL DEFAULT 0, delivered bigint NOT NULL DEFAULT 0, deferred bigint NOT NULL DEFAULT 0,
	bounced bigint NOT NULL DEFAULT 0, soft_bounced bigint NOT NULL DEFAULT 0, complaints bigint NOT NULL DEFAULT 0,
	unsubscribed bigint NOT NULL DEFAULT 0, suppressed bigint NOT NULL DEFAULT 0, dead_lettered bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, day, domain, destination)
);
CREATE INDEX rollup_daily_day ON rollup_daily (day);
CREATE TABLE rollup_tags (
	tenant_id text NOT NULL, day bigint NOT NULL, tag text NOT NULL,
	accepted bigint NOT NULL DEFAULT 0, delivered bigint NOT NULL DEFAULT 0, deferred bigint NOT NULL DEFAULT 0,
	bounced bigint NOT NULL DEFAULT 0, soft_bounced bigint NOT NULL DEFAULT 0, complaints bigint NOT NULL DEFAULT 0,
	unsubscribed bigint NOT NULL DEFAULT 0, suppressed bigint NOT NULL DEFAULT 0, dead_lettered bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, day, tag)
);
CREATE INDEX rollup_tags_day ON rollup_tags (day);

-- Suppressions: an address entry's folded value (store.FoldAddress, Go's
-- Unicode lower case) is in the key before the value, so every spelling
-- of an address is one key range; other kinds have folded ''. The key
-- collates bytewise (as SQLite's does), so listings come in one order
-- whatever the database's locale.
CREATE TABLE suppressions (
	tenant_id text COLLATE "C" NOT NULL,
	kind text COLLATE "C" NOT NULL,
	folded text COLLATE "C" NOT NULL,
	value text COLLATE "C" NOT NULL,
	reason text NOT NULL,
	created_at bigint NOT NULL,
	expires_at bigint NOT NULL DEFAULT 0,
	detail text NOT NULL DEFAULT '',
	PRIMARY KEY (tenant_id, kind, folded, value)
);
`
