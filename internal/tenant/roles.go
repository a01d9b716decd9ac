package tenant

import (
	"fmt"
	"slices"
)

// Roles of accounts, from most to least powerful. A role maps to API
// scopes: viewer reads, sender sends and reads, admin and owner hold
// every scope. An owner of tenant "" owns the installation: it may act for
// every tenant (name one when creating a key).
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleSender = "sender"
	RoleViewer = "viewer"
)

// ParseRole checks a role name.
func ParseRole(r string) (string, error) {
	switch r {
	case RoleOwner, RoleAdmin, RoleSender, RoleViewer:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want owner, admin, sender or viewer)", r)
}

// RoleScopes returns the API scopes a role grants.
func RoleScopes(role string) []string {
	switch role {
	case RoleOwner, RoleAdmin:
		return []string{ScopeAdmin, ScopeSend, ScopeRead}
	case RoleSender:
		return []string{ScopeSend, ScopeRead}
	case RoleViewer:
		return []string{ScopeRead}
	}
	return nil
}

// ScopesWithin reports whether every scope in want is held by have (a
// key or role can only hand out what it holds; admin holds everything).
func ScopesWithin(want, have []string) bool {
	for _, s := range want {
		if !slices.Contains(have, s) && !slices.Contains(have, ScopeAdmin) {
			return false
		}
	}
	return true
}
