// Package dmarc takes DMARC aggregate reports (RFC 7489 §7.2 and appendix
// C) mailed to posthorn's rua address, parses them with strict limits,
// stores them, and summarises them per domain and source IP: volume,
// DKIM and SPF alignment pass/fail, and the sources that are not
// posthorn's own addresses (someone else sending as the domain).
//
// Invariants:
//   - Reading a report is bounded: the attachment's size, the XML's size
//     after decompression (read through a limit, whatever the archive
//     declares), the compression ratio, and the number of records. DTDs
//     are refused, so no entity can be defined, let alone expanded.
//   - A malformed report gets 550 5.6.0 and an oversized one 552 5.3.4;
//     a panic while parsing is recovered into 550, never a crash.
//   - A report is stored once per reporting org and report ID.
//
// Tests prove the figures of a corpus of real reports (testdata, from
// parsedmarc, Apache-2.0) and of one written by the test, and that zip
// bombs, billion-laughs entity expansion and truncated archives are
// refused; FuzzParse checks the parser never panics and keeps its caps.
package dmarc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/store"
)

// Service takes and summarises reports.
type Service struct {
	Store  store.DMARC
	Limits Limits
	// Ours lists posthorn's own sending addresses (pools, configured
	// IPs); sources outside it are flagged. Empty: nothing is flagged.
	Ours func() []netip.Addr
	Log  *slog.Logger
	Now  func() time.Time
}

// Reply is an SMTP reply for the intake.
type Reply struct {
	Code     int
	Enhanced string
	Text     string
}

// Take reads, stores and acknowledges one report message.
func (s *Service) Take(ctx context.Context, msg []byte) (rep Reply) {
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("dmarc report parser panicked", "panic", p)
			rep = Reply{550, "5.6.0", "Malformed DMARC report"}
		}
	}()
	r, err := s.read(msg)
	if err != nil {
		s.Log.Info("refused DMARC report", "err", err)
		if errors.Is(err, ErrTooLarge) {
			return Reply{552, "5.3.4", "DMARC report too large: " + clip(err.Error(), 200)}
		}
		return Reply{550, "5.6.0", "Malformed DMARC report: " + clip(err.Error(), 200)}
	}
	dup, err := s.store(ctx, r)
	if err != nil {
		s.Log.Error("store DMARC report", "err", err)
		return Reply{451, "4.3.0", "Cannot store the report now, try again later"}
	}
	if dup {
		return Reply{250, "2.0.0", "OK, report already received"}
	}
	s.Log.Info("DMARC report stored", "org", r.OrgName, "report", r.ReportID, "domain", r.Domain, "records", len(r.Records))
	return Reply{250, "2.0.0", fmt.Sprintf("OK, DMARC report with %d records stored", len(r.Records))}
}

func (s *Service) read(msg []byte) (*Report, error) {
	att, err := Attachment(msg, s.Limits)
	if err != nil {
		return nil, err
	}
	x, err := Extract(att, s.Limits)
	if err != nil {
		return nil, err
	}
	return Parse(x, s.Limits)
}

func (s *Service) store(ctx context.Context, r *Report) (bool, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	rep := &store.DMARCReport{OrgName: r.OrgName, Email: r.Email, ReportID: r.ReportID, Domain: r.Domain, Policy: r.Policy,
		Begin: r.Begin, End: r.End, ReceivedAt: now().UTC()}
	rows := make([]store.DMARCRow, len(r.Records))
	for i, x := range r.Records {
		hf := x.HeaderFrom
		if hf == "" {
			hf = r.Domain
		}
		rows[i] = store.DMARCRow{SourceIP: x.SourceIP.String(), Count: x.Count, Disposition: x.Disposition, DKIM: x.DKIM,
			SPF: x.SPF, HeaderFrom: hf, EnvFrom: x.EnvFrom, AuthResults: x.AuthResults}
	}
	return s.Store.PutDMARCReport(ctx, rep, rows)
}

// Source is one sending address's figures for a domain.
type Source struct {
	IP         string   `json:"source_ip"`
	Messages   int      `json:"messages"`
	DKIMPass   int      `json:"dkim_aligned_pass"`
	DKIMFail   int      `json:"dkim_aligned_fail"`
	SPFPass    int      `json:"spf_aligned_pass"`
	SPFFail    int      `json:"spf_aligned_fail"`
	DMARCPass  int      `json:"dmarc_pass"` // DKIM or SPF aligned
	DMARCFail  int      `json:"dmarc_fail"`
	Ours       *bool    `json:"ours,omitempty"` // nil when posthorn knows no addresses of its own
	Reporters  []string `json:"reporters"`
	Quarantine int      `json:"quarantined"`
	Rejected   int      `json:"rejected"`
}

// Summary is a domain's figures over the reports since a time.
type Summary struct {
	Domain    string    `json:"domain"`
	Since     time.Time `json:"since"`
	Reports   int       `json:"reports"`
	Messages  int       `json:"messages"`
	DKIMPass  int       `json:"dkim_aligned_pass"`
	SPFPass   int       `json:"spf_aligned_pass"`
	DMARCPass int       `json:"dmarc_pass"`
	DMARCFail int       `json:"dmarc_fail"`
	Sources   []Source  `json:"sources"`
	// NotOurs lists sources outside posthorn's addresses, most mail
	// first: someone else sending as the domain (or a forwarder).
	NotOurs []string `json:"not_ours"`
}

// Summarize adds up the stored rows for domain.
func (s *Service) Summarize(ctx context.Context, domain string, since time.Time) (*Summary, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	rows, err := s.Store.DMARCRows(ctx, domain, since)
	if err != nil {
		return nil, err
	}
	var ours map[netip.Addr]bool
	if s.Ours != nil {
		if addrs := s.Ours(); len(addrs) > 0 {
			ours = map[netip.Addr]bool{}
			for _, a := range addrs {
				ours[a.Unmap()] = true
			}
		}
	}
	return summarize(domain, since, rows, ours), nil
}

func summarize(domain string, since time.Time, rows []store.DMARCRow, ours map[netip.Addr]bool) *Summary {
	sum := &Summary{Domain: domain, Since: since, Sources: []Source{}, NotOurs: []string{}}
	by := map[string]*Source{}
	reports := map[int64]bool{}
	for _, w := range rows {
		reports[w.ReportID] = true
		src := by[w.SourceIP]
		if src == nil {
			src = &Source{IP: w.SourceIP}
			if ours != nil {
				ip, _ := netip.ParseAddr(w.SourceIP)
				o := ours[ip.Unmap()]
				src.Ours = &o
			}
			by[w.SourceIP] = src
		}
		n := w.Count
		src.Messages += n
		sum.Messages += n
		if w.DKIM == "pass" {
			src.DKIMPass += n
			sum.DKIMPass += n
		} else {
			src.DKIMFail += n
		}
		if w.SPF == "pass" {
			src.SPFPass += n
			sum.SPFPass += n
		} else {
			src.SPFFail += n
		}
		if w.DKIM == "pass" || w.SPF == "pass" {
			src.DMARCPass += n
			sum.DMARCPass += n
		} else {
			src.DMARCFail += n
			sum.DMARCFail += n
		}
		switch w.Disposition {
		case "quarantine":
			src.Quarantine += n
		case "reject":
			src.Rejected += n
		}
		if !contains(src.Reporters, w.OrgName) {
			src.Reporters = append(src.Reporters, w.OrgName)
		}
	}
	sum.Reports = len(reports)
	for _, src := range by {
		sum.Sources = append(sum.Sources, *src)
	}
	sort.Slice(sum.Sources, func(i, j int) bool {
		a, b := sum.Sources[i], sum.Sources[j]
		if a.Messages != b.Messages {
			return a.Messages > b.Messages
		}
		return a.IP < b.IP
	})
	for _, src := range sum.Sources {
		if src.Ours != nil && !*src.Ours {
			sum.NotOurs = append(sum.NotOurs, src.IP)
		}
	}
	return sum
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
