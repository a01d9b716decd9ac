package accept

import "github.com/posthorn/posthorn/internal/tenant"

// CheckAllowedSender is the MAIL FROM check of a restricted SMTP user, so
// the client hears the refusal before sending data. The null sender
// passes (its From header is checked at DATA).
func CheckAllowedSender(allowed []string, sender string) error {
	if len(allowed) == 0 || sender == "" {
		return nil
	}
	if d := addrDomain(sender); !tenant.DomainAllowed(allowed, d) {
		return &SenderError{Domain: clip(d, 100), Restricted: true}
	}
	return nil
}

// checkAllowedDomains enforces a submission's own list of sender domains:
// the envelope sender and every From address must be in it, and a From
// address must be there to check. Messages posthorn makes (DSNs) are
// exempt.
func checkAllowedDomains(sub *Submission, h *header) error {
	if len(sub.AllowedDomains) == 0 || sub.Source == "dsn" {
		return nil
	}
	if err := CheckAllowedSender(sub.AllowedDomains, sub.Sender); err != nil {
		return err
	}
	domains, ok := fromDomains(h)
	if !ok || len(domains) == 0 {
		return &Error{Code: 553, Enhanced: "5.7.1", Msg: "the From header has no address that can be checked"}
	}
	for _, d := range domains {
		if !tenant.DomainAllowed(sub.AllowedDomains, d) {
			return &SenderError{Domain: clip(d, 100), Restricted: true}
		}
	}
	return nil
}
