package blocklist

import (
	"strings"

	"github.com/posthorn/posthorn/internal/config"
)

// Info describes one DNS blocklist: what its return codes mean, how much
// a listing matters to deliverability (weight 1..10, 10 = most mail
// refused), and where to ask for removal.
type Info struct {
	Zone       string            `json:"zone"`
	Name       string            `json:"name"`
	Weight     int               `json:"weight"`
	RemovalURL string            `json:"removal_url,omitempty"`
	Codes      map[string]string `json:"codes,omitempty"`
}

// Known returns the built-in table of common lists. Their terms (see
// docs/reputation.md) matter: Spamhaus refuses queries that come through
// large public resolvers (answering 127.255.255.254) and limits free use
// to low volumes; Barracuda asks for registration; SpamCop and UCEPROTECT
// are free for moderate rates.
func Known() []Info {
	spamhausErr := map[string]string{
		"127.255.255.252": "query error: typo in the zone name (Spamhaus)",
		"127.255.255.254": "query refused: queries through a public/open resolver are blocked (Spamhaus)",
		"127.255.255.255": "query refused: excessive number of queries (Spamhaus)",
	}
	with := func(m map[string]string) map[string]string {
		for k, v := range spamhausErr {
			m[k] = v
		}
		return m
	}
	return []Info{
		{Zone: "zen.spamhaus.org", Name: "Spamhaus ZEN", Weight: 10, RemovalURL: "https://check.spamhaus.org/",
			Codes: with(map[string]string{
				"127.0.0.2":  "SBL: Spamhaus Block List, a known spam source or operation",
				"127.0.0.3":  "SBL CSS: snowshoe spam source",
				"127.0.0.4":  "XBL: exploited host (infected, open proxy)",
				"127.0.0.9":  "SBL DROP/EDROP: hijacked netblock",
				"127.0.0.10": "PBL: ISP-maintained range that should not send mail directly",
				"127.0.0.11": "PBL: Spamhaus-maintained range that should not send mail directly",
			})},
		{Zone: "sbl.spamhaus.org", Name: "Spamhaus SBL", Weight: 10, RemovalURL: "https://check.spamhaus.org/",
			Codes: with(map[string]string{"127.0.0.2": "SBL: known spam source", "127.0.0.3": "SBL CSS: snowshoe spam source"})},
		{Zone: "xbl.spamhaus.org", Name: "Spamhaus XBL", Weight: 9, RemovalURL: "https://check.spamhaus.org/",
			Codes: with(map[string]string{"127.0.0.4": "XBL: exploited host (infected, open proxy)"})},
		{Zone: "pbl.spamhaus.org", Name: "Spamhaus PBL", Weight: 7, RemovalURL: "https://check.spamhaus.org/",
			Codes: with(map[string]string{"127.0.0.10": "PBL: ISP-maintained dynamic/end-user range", "127.0.0.11": "PBL: Spamhaus-maintained range"})},
		{Zone: "dbl.spamhaus.org", Name: "Spamhaus DBL (domains)", Weight: 10, RemovalURL: "https://check.spamhaus.org/",
			Codes: with(map[string]string{
				"127.0.1.2":   "DBL: spam domain",
				"127.0.1.4":   "DBL: phishing domain",
				"127.0.1.5":   "DBL: malware domain",
				"127.0.1.6":   "DBL: botnet command and control domain",
				"127.0.1.102": "DBL: abused legitimate spam domain",
				"127.0.1.103": "DBL: abused spammed redirector domain",
				"127.0.1.104": "DBL: abused legitimate phishing domain",
				"127.0.1.105": "DBL: abused legitimate malware domain",
				"127.0.1.106": "DBL: abused legitimate botnet C&C domain",
			})},
		{Zone: "b.barracudacentral.org", Name: "Barracuda BRBL", Weight: 8, RemovalURL: "https://www.barracudacentral.org/rbl/removal-request",
			Codes: map[string]string{"127.0.0.2": "listed by Barracuda Reputation Block List"}},
		{Zone: "bl.spamcop.net", Name: "SpamCop", Weight: 6, RemovalURL: "https://www.spamcop.net/bl.shtml",
			Codes: map[string]string{"127.0.0.2": "listed by SpamCop (reported spam; expires 24h after the last report)"}},
		{Zone: "psbl.surriel.com", Name: "PSBL", Weight: 4, RemovalURL: "https://psbl.org/",
			Codes: map[string]string{"127.0.0.2": "listed by the Passive Spam Block List (spam trap hits)"}},
		{Zone: "dnsbl-1.uceprotect.net", Name: "UCEPROTECT level 1", Weight: 4, RemovalURL: "https://www.uceprotect.net/en/rblcheck.php",
			Codes: map[string]string{"127.0.0.2": "UCEPROTECT level 1: this IP sent to spam traps (expires after 7 days)"}},
		{Zone: "bl.mailspike.net", Name: "Mailspike", Weight: 5, RemovalURL: "https://mailspike.org/iplookup.html",
			Codes: map[string]string{"127.0.0.2": "Mailspike: poor reputation", "127.0.0.10": "Mailspike: worst reputation",
				"127.0.0.11": "Mailspike: very bad reputation", "127.0.0.12": "Mailspike: bad reputation", "127.0.0.13": "Mailspike: suspicious"}},
		{Zone: "multi.surbl.org", Name: "SURBL (domains)", Weight: 8, RemovalURL: "https://www.surbl.org/surbl-analysis",
			Codes: map[string]string{"127.0.0.1": "query blocked by SURBL (public resolver or over limit)",
				"127.0.0.8": "SURBL: phishing", "127.0.0.16": "SURBL: malware", "127.0.0.64": "SURBL: abuse/spam", "127.0.0.128": "SURBL: cracked site"}},
		{Zone: "multi.uribl.com", Name: "URIBL (domains)", Weight: 6, RemovalURL: "https://admin.uribl.com/",
			Codes: map[string]string{"127.0.0.1": "query refused by URIBL (public resolver or over limit)",
				"127.0.0.2": "URIBL black", "127.0.0.4": "URIBL grey", "127.0.0.8": "URIBL red"}},
	}
}

// DefaultIPZones and DefaultDomainZones are suggested in the docs; they
// are queried only when blocklists are enabled and listed in the config.
func DefaultIPZones() []string {
	return []string{"zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net", "psbl.surriel.com", "bl.mailspike.net"}
}

// DefaultDomainZones: see DefaultIPZones.
func DefaultDomainZones() []string {
	return []string{"dbl.spamhaus.org", "multi.surbl.org", "multi.uribl.com"}
}

// table merges the built-in lists with the config's overrides (by zone:
// set fields replace, codes are added or replaced one by one).
func table(over []config.BlocklistInfo) map[string]Info {
	out := map[string]Info{}
	for _, l := range Known() {
		out[l.Zone] = l
	}
	for _, o := range over {
		z := strings.ToLower(strings.TrimSuffix(o.Zone, "."))
		l, ok := out[z]
		if !ok {
			l = Info{Zone: z, Name: z, Weight: 5, Codes: map[string]string{}}
		}
		if o.Name != "" {
			l.Name = o.Name
		}
		if o.Weight > 0 {
			l.Weight = o.Weight
		}
		if o.RemovalURL != "" {
			l.RemovalURL = o.RemovalURL
		}
		if l.Codes == nil {
			l.Codes = map[string]string{}
		}
		for k, v := range o.Codes {
			l.Codes[k] = v
		}
		out[z] = l
	}
	return out
}
