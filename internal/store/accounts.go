package store

import (
	"context"
	"time"
)

// Credentials is the store of the people and programs that may act for a
// tenant beyond creating them: removing SMTP users and API keys, keeping a
// key's last use, rehashing passwords, and accounts (people with a role).
type Credentials interface {
	// DeleteSMTPUser removes a user of tenantID ("" any tenant);
	// ErrNotFound when there is none.
	DeleteSMTPUser(ctx context.Context, tenantID, username string) error
	// SetSMTPUserPassword replaces a user's password hash.
	SetSMTPUserPassword(ctx context.Context, username, hash string) error
	// DeleteAPIKey removes a key of tenantID ("" any tenant); ErrNotFound
	// when there is none.
	DeleteAPIKey(ctx context.Context, tenantID, id string) error
	// DeleteTenant removes a tenant with its SMTP users, API keys and
	// accounts in one write (ErrNotFound when there is no such tenant);
	// its mail, events and other records stay as history.
	DeleteTenant(ctx context.Context, id string) error
	// TouchAPIKey records when a key was last used.
	TouchAPIKey(ctx context.Context, id string, at time.Time) error

	CreateAccount(ctx context.Context, a Account) error
	// GetAccount returns an account by email (stored lower case).
	GetAccount(ctx context.Context, email string) (*Account, error)
	// ListAccounts returns a tenant's accounts ("" lists every account).
	ListAccounts(ctx context.Context, tenantID string) ([]Account, error)
	// DeleteAccount removes an account and the API keys it created, in
	// one transaction; ErrNotFound when there is none.
	DeleteAccount(ctx context.Context, email string) error
	SetAccountPassword(ctx context.Context, email, hash string) error
}

// Account is a person who uses the API (and later the dashboard) for one
// tenant with one role; TenantID "" with role owner owns the installation.
type Account struct {
	Email        string    `json:"email"`
	TenantID     string    `json:"tenant"`
	Role         string    `json:"role"`
	PasswordHash string    `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
}

// APIKeyPrefix is the visible start of a key's secret form: "ph_test_"
// for sandbox keys, "ph_live_" for the others, then the key's id.
func APIKeyPrefix(id string, sandbox bool) string {
	if sandbox {
		return "ph_test_" + id
	}
	return "ph_live_" + id
}
