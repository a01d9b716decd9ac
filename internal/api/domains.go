package api

import (
	"errors"
	"net/http"

	"github.com/posthorn/posthorn/internal/domain"
	"github.com/posthorn/posthorn/internal/store"
)

// DomainRequest adds a sending domain (on the admin socket Tenant names
// the tenant; /v1 uses the API key's tenant and has no such field).
type DomainRequest struct {
	Tenant       string `json:"tenant,omitempty"`
	Domain       string `json:"domain"`
	Algorithm    string `json:"algorithm,omitempty"`
	Selector     string `json:"selector,omitempty"`
	UnverifiedOK bool   `json:"unverified_ok,omitempty"`
}

// V1DomainRequest is DomainRequest on /v1.
type V1DomainRequest struct {
	Domain       string `json:"domain"`
	Algorithm    string `json:"algorithm,omitempty"`
	Selector     string `json:"selector,omitempty"`
	UnverifiedOK bool   `json:"unverified_ok,omitempty"`
}

// RotateRequest starts a DKIM key rotation.
type RotateRequest struct {
	Algorithm string `json:"algorithm,omitempty"`
	Selector  string `json:"selector,omitempty"`
}

// DomainError maps a domain service error to a status and error code.
func DomainError(err error) (int, string) {
	var in *domain.InputError
	switch {
	case errors.As(err, &in):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, "conflict"
	}
	return http.StatusInternalServerError, "internal"
}
