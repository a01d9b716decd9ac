package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/tenant"
)

// Admin endpoints for accounts, removing users and keys, and the local
// sendmail submission. A ?tenant= (name or id) scopes a command: a user,
// key or account of another tenant is then answered 404.

func (a *Server) accountRoutes(mux *http.ServeMux) {
	mux.HandleFunc("DELETE /admin/v1/users/{username}", a.removeInTenant("username", a.Tenants.RemoveUser))
	mux.HandleFunc("DELETE /admin/v1/apikeys/{id}", a.removeInTenant("id", a.Tenants.RemoveKey))
	mux.HandleFunc("POST /admin/v1/users/{username}/password", a.userPassword)
	mux.HandleFunc("DELETE /admin/v1/tenants/{name}", a.removeTenant)
	mux.HandleFunc("GET /admin/v1/accounts", a.listAccounts)
	mux.HandleFunc("POST /admin/v1/accounts", a.createAccount)
	mux.HandleFunc("DELETE /admin/v1/accounts/{email}", a.removeInTenant("email", a.Tenants.RemoveAccount))
	mux.HandleFunc("POST /admin/v1/accounts/{email}/password", a.accountPassword)
	mux.HandleFunc("POST /admin/v1/sendmail", a.sendmail)
}

// removeTenant removes a tenant (?force=1: cancelling its pending mail
// first; without it, pending mail refuses the removal). Its sending
// domains and webhook endpoints must be removed first: they have their
// own commands, which also clean up what the server holds in memory.
func (a *Server) removeTenant(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, err := a.Tenants.Resolve(ctx, r.PathValue("name"))
	if err != nil {
		a.fail(w, err)
		return
	}
	if t.Name == tenant.DefaultTenant {
		a.fail(w, &api.BadRequest{Msg: "the default tenant cannot be removed"})
		return
	}
	doms, err := a.Store.ListDomains(ctx, t.ID)
	if err != nil {
		a.fail(w, err)
		return
	}
	eps, err := a.Store.ListEndpoints(ctx, t.ID)
	if err != nil {
		a.fail(w, err)
		return
	}
	if len(doms) > 0 || len(eps) > 0 {
		a.fail(w, fmt.Errorf("tenant %s still has %d sending domains and %d webhook endpoints; remove them first (posthorn domain remove, posthorn webhook remove): %w",
			t.Name, len(doms), len(eps), store.ErrConflict))
		return
	}
	counts, err := a.Store.CountDeliveries(ctx, t.ID)
	if err != nil {
		a.fail(w, err)
		return
	}
	pending := 0
	for _, st := range store.PendingStates {
		pending += counts[st]
	}
	note := ""
	if pending > 0 {
		if r.URL.Query().Get("force") == "" {
			a.fail(w, fmt.Errorf("tenant %s has %d pending deliveries; --force cancels them and removes the tenant: %w", t.Name, pending, store.ErrConflict))
			return
		}
		res, err := a.Ops.Delete(ctx, ops.Selection{TenantID: t.ID, All: true})
		if err != nil {
			a.fail(w, err)
			return
		}
		note = fmt.Sprintf("; %d pending deliveries cancelled", res.Changed)
		pending = res.Changed
	}
	if err := a.Tenants.RemoveTenant(ctx, t, note); err != nil {
		a.fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"removed": t.Name, "id": t.ID, "cancelled": pending})
}

// userPassword sets an SMTP user's password ("" generates one); the
// answer shows it once.
func (a *Server) userPassword(w http.ResponseWriter, r *http.Request) {
	var req api.PasswordRequest
	tenantID, err := a.tenantFilter(r)
	if err == nil {
		err = api.Decode(r, &req)
	}
	var pw string
	if err == nil {
		pw, err = a.Tenants.SetUserPassword(r.Context(), tenantID, r.PathValue("username"), req.Password)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"username": r.PathValue("username"), "password": pw})
}

func (a *Server) listAccounts(w http.ResponseWriter, r *http.Request) {
	tenantID, err := a.tenantFilter(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	as, err := a.Store.ListAccounts(r.Context(), tenantID)
	if err != nil {
		a.fail(w, err)
		return
	}
	if as == nil {
		as = []store.Account{}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": as, "count": len(as)})
}

func (a *Server) createAccount(w http.ResponseWriter, r *http.Request) {
	var req api.AccountRequest
	if err := api.Decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	tenantID := ""
	if req.Tenant != "" {
		t, err := a.Tenants.Resolve(r.Context(), req.Tenant)
		if err != nil {
			a.fail(w, err)
			return
		}
		tenantID = t.ID
	}
	acct, pass, err := a.Tenants.AddAccount(r.Context(), req.Email, tenantID, req.Role, req.Password)
	if errors.Is(err, store.ErrConflict) {
		a.fail(w, err)
		return
	}
	if err != nil {
		a.fail(w, &api.BadRequest{Msg: err.Error()})
		return
	}
	resp := api.AccountResponse{Account: *acct}
	if req.Password == "" {
		resp.Password = pass
	}
	api.WriteJSON(w, http.StatusCreated, resp)
}

func (a *Server) accountPassword(w http.ResponseWriter, r *http.Request) {
	var req api.PasswordRequest
	if err := api.Decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	email := r.PathValue("email")
	tenantID, err := a.tenantFilter(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	acct, err := a.Store.GetAccount(r.Context(), email)
	if err == nil && tenantID != "" && acct.TenantID != tenantID {
		err = fmt.Errorf("account %s: %w", email, store.ErrNotFound)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	if err := a.Tenants.SetAccountPassword(r.Context(), email, req.Password); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			a.fail(w, err)
		} else {
			a.fail(w, &api.BadRequest{Msg: err.Error()})
		}
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"email": acct.Email, "password_changed": true})
}

// SendmailHandler is the sendmail endpoint alone, for the sendmail
// socket.
func (a *Server) SendmailHandler() http.Handler { return http.HandlerFunc(a.sendmail) }

// sendmail queues a local message through the acceptance pipeline as the
// configured sendmail tenant. Rejections are 422 (sender domains 403),
// a failure to store 503: the CLI maps them to sysexits codes.
func (a *Server) sendmail(w http.ResponseWriter, r *http.Request) {
	var req api.SendmailRequest
	if err := api.Decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if a.MaxMessageSize > 0 && len(req.Message) > a.MaxMessageSize {
		api.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("message over %d bytes", a.MaxMessageSize))
		return
	}
	t, err := a.Tenants.Resolve(r.Context(), a.SendmailTenant)
	if err != nil {
		a.Log.Error("sendmail tenant", "tenant", a.SendmailTenant, "err", err)
		api.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the sendmail tenant does not exist; check [sendmail] tenant")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	res, err := a.Accept.Accept(ctx, &accept.Submission{TenantID: t.ID, Source: "sendmail", Protocol: "LOCAL", Helo: "sendmail",
		ClientIP: "127.0.0.1", Metadata: localUser(req.LocalUser), Sender: req.Sender, Recipients: req.Recipients, Body: req.Message, EightBit: true,
		UTF8: api.NeedsUTF8(req.Sender, req.Recipients)})
	if err != nil {
		var se *accept.SenderError
		if errors.As(err, &se) {
			api.WriteError(w, http.StatusForbidden, "sender_domain_not_allowed", se.Reply().Error())
			return
		}
		if rej, ok := accept.IsRejection(err); ok {
			api.WriteError(w, http.StatusUnprocessableEntity, "rejected", rej.Error())
			return
		}
		a.Log.Error("sendmail accept", "err", err)
		api.WriteError(w, http.StatusServiceUnavailable, "unavailable", "could not queue the message; try again")
		return
	}
	api.WriteJSON(w, http.StatusOK, api.SendmailResponse{ID: res.MessageID, Deliveries: res.Deliveries})
}

// localUser keeps the login that ran sendmail as metadata (which cron
// job or web application sent it).
func localUser(s string) map[string]string {
	if s == "" {
		return nil
	}
	if len(s) > 64 {
		s = s[:64]
	}
	return map[string]string{"sendmail_user": s}
}
