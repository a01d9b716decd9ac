package postgres

// accountsSchema is the accounts part of the schema (see migrations in
// schema.go): tenants and their credentials, sending domains and DKIM
// keys, webhook endpoints with their outbox and attempts, alert states and
// DMARC aggregate reports. Times are Unix milliseconds with 0 for "unset",
// as in the SQLite store, so both backends round times the same way.
// Lists (scopes, domains, event types) are text arrays.
const accountsSchema = `
CREATE TABLE tenants (
	id text PRIMARY KEY,
	name text NOT NULL UNIQUE,
	created_at bigint NOT NULL
);
CREATE TABLE smtp_users (
	username text PRIMARY KEY,
	tenant_id text NOT NULL,
	password_hash text NOT NULL,
	default_lane text NOT NULL DEFAULT 'normal',
	idempotent_message_id boolean NOT NULL DEFAULT false,
	send_dsn boolean NOT NULL DEFAULT false,
	domains text[] NOT NULL DEFAULT '{}',
	created_at bigint NOT NULL
);
CREATE INDEX smtp_users_tenant ON smtp_users (tenant_id);
CREATE TABLE api_keys (
	id text PRIMARY KEY,
	tenant_id text NOT NULL,
	name text NOT NULL,
	hash text NOT NULL,
	scopes text[] NOT NULL DEFAULT '{}',
	created_at bigint NOT NULL,
	domains text[] NOT NULL DEFAULT '{}',
	sandbox boolean NOT NULL DEFAULT false,
	expires_at bigint NOT NULL DEFAULT 0,
	last_used_at bigint NOT NULL DEFAULT 0,
	created_by text NOT NULL DEFAULT ''
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);
CREATE INDEX api_keys_created_by ON api_keys (created_by) WHERE created_by <> '';
CREATE TABLE accounts (
	email text PRIMARY KEY,
	tenant_id text NOT NULL,
	role text NOT NULL CHECK (role IN ('owner', 'admin', 'sender', 'viewer')),
	password_hash text NOT NULL,
	created_at bigint NOT NULL
);
CREATE INDEX accounts_tenant ON accounts (tenant_id);

CREATE TABLE domains (
	name text PRIMARY KEY,
	tenant_id text NOT NULL,
	status text NOT NULL CHECK (status IN ('pending', 'verified')),
	unverified_ok boolean NOT NULL DEFAULT false,
	created_at bigint NOT NULL,
	verified_at bigint NOT NULL DEFAULT 0,
	checked_at bigint NOT NULL DEFAULT 0,
	last_check bytea NOT NULL DEFAULT ''
);
CREATE INDEX domains_tenant ON domains (tenant_id);
CREATE TABLE dkim_keys (
	domain text NOT NULL,
	selector text NOT NULL,
	algorithm text NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
	public_key text NOT NULL,
	private_key bytea NOT NULL,
	state text NOT NULL CHECK (state IN ('active', 'pending', 'retired')),
	created_at bigint NOT NULL,
	activated_at bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (domain, selector)
);

-- Outbox and attempt ids come from identity columns: an outbox id names
-- the webhook (webhook-id) and is never handed out twice. A node's
-- sender claims the rows it reads (claimed_by, claimed_until) so that
-- the other nodes' senders leave them alone until recorded or expired.
CREATE TABLE webhook_endpoints (
	id text PRIMARY KEY,
	tenant_id text NOT NULL,
	url text NOT NULL,
	events text[] NOT NULL,
	secret text NOT NULL,
	created_at bigint NOT NULL,
	disabled_at bigint NOT NULL DEFAULT 0,
	failing_since bigint NOT NULL DEFAULT 0
);
CREATE INDEX webhook_endpoints_enabled ON webhook_endpoints (tenant_id) WHERE disabled_at = 0;
CREATE TABLE webhook_outbox (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	endpoint_id text NOT NULL,
	event_id bigint NOT NULL,
	okey text NOT NULL,
	state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
	attempts integer NOT NULL DEFAULT 0,
	next_at bigint NOT NULL DEFAULT 0,
	created_at bigint NOT NULL,
	claimed_by text NOT NULL DEFAULT '',
	claimed_until bigint NOT NULL DEFAULT 0
);
CREATE INDEX webhook_outbox_key ON webhook_outbox (endpoint_id, okey, id) WHERE state = 'pending';
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at) WHERE state = 'pending';
CREATE INDEX webhook_outbox_endpoint ON webhook_outbox (endpoint_id, state, id);
CREATE TABLE webhook_attempts (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	endpoint_id text NOT NULL,
	outbox_id bigint NOT NULL,
	event_id bigint NOT NULL,
	event_type text NOT NULL,
	n integer NOT NULL,
	at bigint NOT NULL,
	duration_us bigint NOT NULL,
	status integer NOT NULL DEFAULT 0,
	ok boolean NOT NULL DEFAULT false,
	error text NOT NULL DEFAULT '',
	response text NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);

CREATE TABLE alerts (
	key text PRIMARY KEY,
	rule text NOT NULL,
	kind text NOT NULL,
	destination text NOT NULL DEFAULT '',
	firing boolean NOT NULL,
	value double precision NOT NULL,
	threshold double precision NOT NULL,
	fired_at bigint NOT NULL,
	resolved_at bigint NOT NULL DEFAULT 0,
	action text NOT NULL DEFAULT '',
	action_state text NOT NULL DEFAULT '',
	detail text NOT NULL DEFAULT ''
);

-- A DMARC report is unique per reporting organisation and report ID, so
-- a report sent twice is stored once.
CREATE TABLE dmarc_reports (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_name text NOT NULL,
	email text NOT NULL DEFAULT '',
	report_id text NOT NULL,
	domain text NOT NULL,
	policy text NOT NULL DEFAULT '',
	begin_at bigint NOT NULL,
	end_at bigint NOT NULL,
	received_at bigint NOT NULL,
	UNIQUE (org_name, report_id)
);
CREATE TABLE dmarc_rows (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	report bigint NOT NULL REFERENCES dmarc_reports (id) ON DELETE CASCADE,
	header_from text NOT NULL,
	source_ip text NOT NULL,
	count integer NOT NULL CHECK (count >= 0),
	disposition text NOT NULL DEFAULT '',
	dkim text NOT NULL DEFAULT '',
	spf text NOT NULL DEFAULT '',
	envelope_from text NOT NULL DEFAULT '',
	auth_results text NOT NULL DEFAULT '',
	end_at bigint NOT NULL
);
CREATE INDEX dmarc_rows_domain ON dmarc_rows (header_from, end_at);
CREATE INDEX dmarc_rows_report ON dmarc_rows (report);
`
