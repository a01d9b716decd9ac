package postgres

// Stubs of the accounts part (tenants, credentials, domains, webhooks, alerts, DMARC) not written yet.
// Delete each stub as its real method lands.

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthorn/posthorn/internal/store"
)

func (s *Store) CreateTenant(ctx context.Context, t store.Tenant) error {
	return errNotImplemented
}

func (s *Store) GetTenant(ctx context.Context, id string) (*store.Tenant, error) {
	return nil, errNotImplemented
}

func (s *Store) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	return nil, errNotImplemented
}

func (s *Store) CreateSMTPUser(ctx context.Context, u store.SMTPUser) error {
	return errNotImplemented
}

func (s *Store) GetSMTPUser(ctx context.Context, username string) (*store.SMTPUser, error) {
	return nil, errNotImplemented
}

func (s *Store) ListSMTPUsers(ctx context.Context, tenantID string) ([]store.SMTPUser, error) {
	return nil, errNotImplemented
}

func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	return errNotImplemented
}

func (s *Store) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	return nil, errNotImplemented
}

func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]store.APIKey, error) {
	return nil, errNotImplemented
}

func (s *Store) CreateDomain(ctx context.Context, d store.SendingDomain, k store.DKIMKey) error {
	return errNotImplemented
}

func (s *Store) GetDomain(ctx context.Context, name string) (*store.SendingDomain, error) {
	return nil, errNotImplemented
}

func (s *Store) ListDomains(ctx context.Context, tenantID string) ([]store.SendingDomain, error) {
	return nil, errNotImplemented
}

func (s *Store) UpdateDomain(ctx context.Context, d store.SendingDomain) error {
	return errNotImplemented
}

func (s *Store) DeleteDomain(ctx context.Context, name string) error {
	return errNotImplemented
}

func (s *Store) PutDKIMKeys(ctx context.Context, ks ...store.DKIMKey) error {
	return errNotImplemented
}

func (s *Store) DKIMKeys(ctx context.Context, domain string) ([]store.DKIMKey, error) {
	return nil, errNotImplemented
}

func (s *Store) DeleteDKIMKey(ctx context.Context, domain, selector string) error {
	return errNotImplemented
}

func (s *Store) DeleteSMTPUser(ctx context.Context, tenantID, username string) error {
	return errNotImplemented
}

func (s *Store) SetSMTPUserPassword(ctx context.Context, username, hash string) error {
	return errNotImplemented
}

func (s *Store) DeleteAPIKey(ctx context.Context, tenantID, id string) error {
	return errNotImplemented
}

func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	return errNotImplemented
}

func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	return errNotImplemented
}

func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	return errNotImplemented
}

func (s *Store) GetAccount(ctx context.Context, email string) (*store.Account, error) {
	return nil, errNotImplemented
}

func (s *Store) ListAccounts(ctx context.Context, tenantID string) ([]store.Account, error) {
	return nil, errNotImplemented
}

func (s *Store) DeleteAccount(ctx context.Context, email string) error {
	return errNotImplemented
}

func (s *Store) SetAccountPassword(ctx context.Context, email, hash string) error {
	return errNotImplemented
}

func (s *Store) CreateEndpoint(ctx context.Context, e store.WebhookEndpoint) error {
	return errNotImplemented
}

func (s *Store) ListEndpoints(ctx context.Context, tenantID string) ([]store.WebhookEndpoint, error) {
	return nil, errNotImplemented
}

func (s *Store) GetEndpoint(ctx context.Context, tenantID, id string) (*store.WebhookEndpoint, error) {
	return nil, errNotImplemented
}

func (s *Store) DeleteEndpoint(ctx context.Context, tenantID, id string) error {
	return errNotImplemented
}

func (s *Store) EnableEndpoint(ctx context.Context, tenantID, id string) error {
	return errNotImplemented
}

func (s *Store) QueueTestWebhook(ctx context.Context, tenantID, id string, now time.Time) error {
	return errNotImplemented
}

func (s *Store) DueWebhooks(ctx context.Context, now time.Time, limit int) ([]store.OutboxItem, error) {
	return nil, errNotImplemented
}

func (s *Store) NextWebhookDue(ctx context.Context, now time.Time) (time.Time, error) {
	return time.Time{}, errNotImplemented
}

func (s *Store) RecordWebhookAttempt(ctx context.Context, r store.WebhookResult) error {
	return errNotImplemented
}

func (s *Store) WebhookOutboxDepth(ctx context.Context) (int, error) {
	return 0, errNotImplemented
}

func (s *Store) WebhookAttempts(ctx context.Context, tenantID, endpointID string, limit int) ([]store.WebhookAttempt, error) {
	return nil, errNotImplemented
}

func (s *Store) WebhookSignal() <-chan struct{} {
	return nil
}

func (s *Store) PutAlert(ctx context.Context, a store.Alert, ev store.Event) error {
	return errNotImplemented
}

func (s *Store) UpdateAlert(ctx context.Context, a store.Alert) error {
	return errNotImplemented
}

func (s *Store) ListAlerts(ctx context.Context, since time.Time) ([]store.Alert, error) {
	return nil, errNotImplemented
}

func (s *Store) LastEventID(ctx context.Context) (int64, error) {
	return 0, errNotImplemented
}

func (s *Store) OldestQueued(ctx context.Context) (time.Time, error) {
	return time.Time{}, errNotImplemented
}

func (s *Store) PutDMARCReport(ctx context.Context, r *store.DMARCReport, rows []store.DMARCRow) (dup bool, err error) {
	return false, errNotImplemented
}

func (s *Store) DMARCRows(ctx context.Context, domain string, since time.Time) ([]store.DMARCRow, error) {
	return nil, errNotImplemented
}

// queueWebhooks adds the webhook outbox rows for events just inserted in
// tx (their IDs filled in): the core event writer calls it in the same
// transaction, so an event and its webhook deliveries commit together.
func (s *Store) queueWebhooks(ctx context.Context, tx pgx.Tx, evs []store.Event) error {
	return nil
}
