// Package unsubscribe implements one-click unsubscribe (RFC 8058): the
// List-Unsubscribe and List-Unsubscribe-Post headers added to a delivery,
// with a signed token naming that delivery, and the HTTP endpoint that
// turns a valid POST into an "unsubscribe" suppression and an
// "unsubscribed" event.
package unsubscribe

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// Suppressions is what an unsubscribe adds to.
type Suppressions interface {
	Add(ctx context.Context, ss ...store.Suppression) error
}

// Service makes headers and serves the endpoint.
type Service struct {
	Key     []byte
	BaseURL string // e.g. https://mail.example.com (no trailing slash)
	Mailto  string // optional: unsubscribe@example.com
	Store   store.Store
	Supp    Suppressions
	Log     *slog.Logger
}

func (s *Service) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.Key)
	m.Write([]byte("unsubscribe\x00"))
	m.Write(b)
	return m.Sum(nil)[:12]
}

// Token signs a delivery id.
func (s *Service) Token(deliveryID int64) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(deliveryID))
	return strings.ToLower(enc.EncodeToString(append(b, s.mac(b)...)))
}

// ErrBadToken is a token that does not verify.
var ErrBadToken = errors.New("invalid unsubscribe token")

// Check returns the delivery id a token names.
func (s *Service) Check(token string) (int64, error) {
	b, err := enc.DecodeString(strings.ToUpper(token))
	if err != nil || len(b) != 20 || !hmac.Equal(b[8:], s.mac(b[:8])) {
		return 0, ErrBadToken
	}
	return int64(binary.BigEndian.Uint64(b[:8])), nil
}

// Headers are the header lines (CRLF-terminated) to prepend to the
// message sent to one delivery.
func (s *Service) Headers(deliveryID int64) []byte {
	url := s.BaseURL + "/unsubscribe/" + s.Token(deliveryID)
	v := "<" + url + ">"
	if s.Mailto != "" {
		v += ", <mailto:" + s.Mailto + "?subject=unsubscribe>"
	}
	return []byte("List-Unsubscribe: " + v + "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
}

// Handler serves /unsubscribe/{token}: POST unsubscribes (one click, as
// mail clients do per RFC 8058); GET shows a page with a button, so a
// link scanner that follows the URL unsubscribes nobody.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /unsubscribe/{token}", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.Check(r.PathValue("token")); err != nil {
			http.Error(w, "This unsubscribe link is not valid.", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Unsubscribe</title><form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><p>Stop receiving these messages?</p><button>Unsubscribe</button></form>`)
	})
	mux.HandleFunc("POST /unsubscribe/{token}", func(w http.ResponseWriter, r *http.Request) {
		id, err := s.Check(r.PathValue("token"))
		if err != nil {
			http.Error(w, "This unsubscribe link is not valid.", http.StatusNotFound)
			return
		}
		addr, err := s.unsubscribe(r.Context(), id)
		if err != nil {
			s.Log.Error("unsubscribe", "delivery", id, "err", err)
			http.Error(w, "Could not unsubscribe now; please try again.", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>Unsubscribed</title><p>%s will not receive these messages any more.</p>", html.EscapeString(addr))
	})
	return mux
}

func (s *Service) unsubscribe(ctx context.Context, id int64) (string, error) {
	ds, err := s.Store.ListDeliveries(ctx, store.DeliveryFilter{AfterID: id - 1, Limit: 1})
	if err != nil {
		return "", err
	}
	if len(ds) == 0 || ds[0].ID != id {
		return "", fmt.Errorf("delivery %d: %w", id, store.ErrNotFound)
	}
	d := ds[0]
	now := time.Now().UTC()
	if err := s.Supp.Add(ctx, store.Suppression{TenantID: d.TenantID, Kind: "address", Value: d.Recipient, Reason: "unsubscribe",
		CreatedAt: now, Detail: "one-click unsubscribe from message " + d.MessageID}); err != nil {
		return "", err
	}
	err = s.Store.RecordEvent(ctx, store.Event{At: now, Type: store.EventUnsubscribed, TenantID: d.TenantID, MessageID: d.MessageID,
		DeliveryID: d.ID, Recipient: d.Recipient, Detail: "one-click unsubscribe (RFC 8058)"})
	return d.Recipient, err
}
