package domain

import (
	"strings"

	"github.com/posthorn/posthorn/internal/store"
)

// Record purposes.
const (
	PurposeDKIM          = "dkim"
	PurposeSPF           = "spf"
	PurposeDMARC         = "dmarc"
	PurposeReturnPath    = "return_path"
	PurposeReturnPathSPF = "return_path_spf"
)

// Record is one DNS record the operator publishes for a domain.
type Record struct {
	Purpose  string `json:"purpose"`
	Type     string `json:"type"`
	Name     string `json:"name"`
	Value    string `json:"value"`
	Selector string `json:"selector,omitempty"` // DKIM records
	KeyState string `json:"key_state,omitempty"`
	// Required records decide verification (the active DKIM key); the
	// others are recommended and only reported.
	Required bool `json:"required"`
}

// spfValue is the SPF record that authorises posthorn's mail: the
// configured mechanisms (e.g. "ip4:192.0.2.10 include:_spf.example.net"),
// or "a:<hostname>" when none are configured.
func (s *Service) spfValue() string {
	mech := strings.Join(strings.Fields(s.cfg.SPF), " ")
	if mech == "" {
		mech = "a:" + s.cfg.Hostname
	}
	return "v=spf1 " + mech + " ~all"
}

// records lists what to publish for d with keys: one DKIM record per key
// that is not retired (a pending key's record goes out before the switch),
// SPF, a DMARC suggestion and, with a bounce domain, its MX and SPF.
func (s *Service) records(d string, keys []store.DKIMKey) []Record {
	var out []Record
	for _, k := range keys {
		if k.State == store.KeyRetired {
			continue
		}
		out = append(out, Record{Purpose: PurposeDKIM, Type: "TXT", Name: k.Selector + "._domainkey." + d,
			Value: dkimRecord(k.Algorithm, k.PublicKey), Selector: k.Selector, KeyState: k.State, Required: k.State == store.KeyActive})
	}
	spf := s.spfValue()
	out = append(out,
		Record{Purpose: PurposeSPF, Type: "TXT", Name: d, Value: spf},
		Record{Purpose: PurposeDMARC, Type: "TXT", Name: "_dmarc." + d, Value: "v=DMARC1; p=none; rua=mailto:dmarc-reports@" + d})
	if b := s.cfg.BounceDomain; b != "" {
		out = append(out,
			Record{Purpose: PurposeReturnPath, Type: "MX", Name: b, Value: "10 " + s.cfg.Hostname + "."},
			Record{Purpose: PurposeReturnPathSPF, Type: "TXT", Name: b, Value: spf})
	}
	return out
}
