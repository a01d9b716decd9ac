package api

import (
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// TenantRequest creates a tenant.
type TenantRequest struct {
	Name string `json:"name"`
}

// UserRequest creates an SMTP user.
type UserRequest struct {
	Tenant   string `json:"tenant"`
	Username string `json:"username"`
	Password string `json:"password,omitempty"`
	Lane     string `json:"lane,omitempty"`
	// MessageIDIdempotency treats the user's Message-ID headers as
	// idempotency keys.
	MessageIDIdempotency bool `json:"message_id_idempotency,omitempty"`
	// DSN sends the envelope sender a bounce notice when mail finally fails.
	DSN bool `json:"dsn,omitempty"`
	// Domains restricts the user to these sender domains.
	Domains []string `json:"domains,omitempty"`
}

// UserResponse shows the password once.
type UserResponse struct {
	Tenant   string   `json:"tenant"`
	Username string   `json:"username"`
	Password string   `json:"password"`
	Lane     string   `json:"lane"`
	Domains  []string `json:"domains,omitempty"`
}

// KeyRequest creates an API key.
type KeyRequest struct {
	Tenant    string     `json:"tenant"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	Domains   []string   `json:"domains,omitempty"`
	Sandbox   bool       `json:"sandbox,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// KeyResponse shows the key once.
type KeyResponse struct {
	ID        string    `json:"id"`
	Prefix    string    `json:"prefix"`
	Tenant    string    `json:"tenant"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	Domains   []string  `json:"domains,omitempty"`
	Sandbox   bool      `json:"sandbox,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	APIKey    string    `json:"api_key"`
}

// AccountRequest creates an account; Tenant "" with role owner owns the
// installation.
type AccountRequest struct {
	Email    string `json:"email"`
	Tenant   string `json:"tenant,omitempty"`
	Role     string `json:"role"`
	Password string `json:"password,omitempty"` // default: generated
}

// AccountResponse shows a generated password once.
type AccountResponse struct {
	store.Account
	Password string `json:"password,omitempty"`
}

// PasswordRequest sets an account's password.
type PasswordRequest struct {
	Password string `json:"password"`
}

// V1KeyRequest is POST /v1/apikeys.
type V1KeyRequest struct {
	Tenant    string     `json:"tenant,omitempty"` // installation owners only
	Name      string     `json:"name,omitempty"`
	Scopes    []string   `json:"scopes,omitempty"` // default: the creator's
	Domains   []string   `json:"domains,omitempty"`
	Sandbox   bool       `json:"sandbox,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// V1KeyResponse shows a new key's secret, once.
type V1KeyResponse struct {
	store.APIKey
	Secret string `json:"api_key"`
}

// V1UserRequest is POST /v1/users: an SMTP user of the key's tenant.
type V1UserRequest struct {
	Username             string   `json:"username"`
	Password             string   `json:"password,omitempty"`
	Lane                 string   `json:"lane,omitempty"`
	Domains              []string `json:"domains,omitempty"`
	DSN                  bool     `json:"dsn,omitempty"`
	MessageIDIdempotency bool     `json:"message_id_idempotency,omitempty"`
}
