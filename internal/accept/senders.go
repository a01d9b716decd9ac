package accept

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/posthorn/posthorn/internal/smtpproto"
	"github.com/posthorn/posthorn/internal/store"
)

// Senders knows tenants' sending domains (internal/domain): whether a
// tenant may send as a domain (its own, verified or unverified-ok) and the
// function that DKIM-signs that domain's mail (nil: no key).
type Senders interface {
	Sending(tenantID, domain string) (sign func(msg []byte) (field []byte, err error), ok bool)
}

// SenderError refuses a sender domain the tenant may not use, or (with
// Restricted) one outside the SMTP user's or API key's own domain list.
type SenderError struct {
	Domain     string
	Restricted bool
}

func (e *SenderError) Error() string { return e.Reply().Error() }

// Reply is the SMTP answer to the refusal.
func (e *SenderError) Reply() *Error {
	if e.Restricted {
		return &Error{Code: 553, Enhanced: "5.7.1", Msg: "sender domain " + e.Domain + " is not allowed for this user or key"}
	}
	return &Error{Code: 553, Enhanced: "5.7.1", Msg: "sender domain " + e.Domain + " is not a verified domain of this account"}
}

// CheckEnvelopeSender is the MAIL FROM check, so SMTP clients hear the
// refusal before sending data. The null sender passes (the From header is
// still checked at DATA).
func (p *Pipeline) CheckEnvelopeSender(tenantID, sender string) error {
	if p.Senders == nil || p.AllowUnverifiedSenders || sender == "" {
		return nil
	}
	return p.allowed(tenantID, addrDomain(sender))
}

func (p *Pipeline) allowed(tenantID, domain string) error {
	d, err := smtpproto.NormalizeDomain(domain, true)
	if err != nil {
		d = strings.ToLower(domain)
	}
	if _, ok := p.Senders.Sending(tenantID, d); !ok {
		return &SenderError{Domain: clip(d, 100)}
	}
	return nil
}

func addrDomain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// fromDomains returns the domains of every address in every From field;
// ok is false when a From field has no parseable address.
func fromDomains(h *header) (domains []string, ok bool) {
	parser := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		// Only the addresses matter: display names in any charset pass.
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
	for _, f := range h.fields {
		if !strings.EqualFold(f.name, "From") {
			continue
		}
		list, err := parser.ParseList(unfold(f.raw[bytes.IndexByte(f.raw, ':')+1:]))
		if err != nil || len(list) == 0 {
			return nil, false
		}
		for _, a := range list {
			domains = append(domains, addrDomain(a.Address))
		}
	}
	return domains, true
}

// checkSenders enforces that the envelope sender and every From address
// are the tenant's own domains. Messages posthorn makes itself (DSNs) are
// exempt.
func (p *Pipeline) checkSenders(sub *Submission, from []string, fromOK bool) error {
	if p.Senders == nil || p.AllowUnverifiedSenders || sub.Source == "dsn" {
		return nil
	}
	if sub.Sender != "" {
		if err := p.allowed(sub.TenantID, addrDomain(sub.Sender)); err != nil {
			return err
		}
	}
	if !fromOK {
		return &Error{Code: 553, Enhanced: "5.7.1", Msg: "the From header has no address that can be checked"}
	}
	for _, d := range from {
		if err := p.allowed(sub.TenantID, d); err != nil {
			return err
		}
	}
	return nil
}

// DeferredSigner signs stored messages in the background and schedules
// their deliveries once the signature is stored (internal/dkimqueue).
type DeferredSigner interface {
	Submit(m *store.Message, ds []store.Delivery)
}

// dkimSign prepends a DKIM-Signature of the first From address's domain
// when the tenant owns it and it has a key; otherwise msg is unchanged.
// With p.Deferred it does not sign but returns that domain (signAs), to
// be signed after the commit.
func (p *Pipeline) dkimSign(sub *Submission, from []string, msg []byte) (out []byte, signAs string, err error) {
	if p.Senders == nil || len(from) == 0 {
		return msg, "", nil
	}
	d, err := smtpproto.NormalizeDomain(from[0], true)
	if err != nil {
		return msg, "", nil
	}
	sign, ok := p.Senders.Sending(sub.TenantID, d)
	if !ok || sign == nil {
		return msg, "", nil
	}
	if p.Deferred != nil {
		return msg, d, nil
	}
	sig, err := sign(msg)
	if err != nil {
		// Only a malformed header makes signing fail.
		return nil, "", &Error{Code: 550, Enhanced: "5.6.0", Msg: fmt.Sprintf("the message header cannot be DKIM-signed: %s", clip(err.Error(), 100))}
	}
	out = make([]byte, 0, len(sig)+len(msg))
	return append(append(out, sig...), msg...), "", nil
}
