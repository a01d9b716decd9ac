package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/blocklist"
	"github.com/posthorn/posthorn/internal/dmarc"
	"github.com/posthorn/posthorn/internal/pool"
	"github.com/posthorn/posthorn/internal/store"
)

// TestReputation runs the built binary with two source pools on loopback
// aliases, blocklist monitoring against a fake zone on the test DNS
// server, and the DMARC rua address on the inbound listener: newsletter
// mail leaves from one address and other mail from the other, `posthorn
// pools` counts them, a listed pool address raises an alert through
// `posthorn blocklist check`, and a DMARC report mailed to the rua
// address is summarised by `posthorn dmarc report` (a malformed one is
// refused with 550 5.6.0).
func TestReputation(t *testing.T) {
	inPort := freePort(t)
	cfg := fmt.Sprintf(`bounce_domain = "bounces.test"
inbound_listen = "127.0.0.1:%d"

[dmarc]
rua = "dmarc@bounces.test"

[blocklists]
enabled = true
interval = "1h"
timeout = "1s"
ip_zones = ["zen.test"]

[[blocklists.list]]
zone = "zen.test"
name = "Test ZEN"
weight = 9
removal_url = "https://zen.test/remove"
codes = { "127.0.0.4" = "XBL: exploited host" }

[[pool]]
name = "marketing"
addresses = ["127.0.0.11"]
ehlo = "bulk.posthorn.test"
domains = ["news.test"]

[[pool]]
name = "default"
addresses = ["127.0.0.12"]
`, inPort)
	w := newWorld(t, Options{Config: cfg}, "127.0.0.2")
	w.domain("x.test", "127.0.0.2")
	in, mx := w.in, w.mx["127.0.0.2"]

	news := in.Send("letter@news.test", []string{"a@x.test"}, msgBody("newsletter"))
	app := in.Send("app@app.test", []string{"b@x.test"}, msgBody("receipt"))
	in.WaitFinal(news, 20*time.Second)
	in.WaitFinal(app, 20*time.Second)
	from := map[string]string{}
	for _, m := range mx.Messages() {
		from[m.To[0]] = m.Remote + " " + m.Helo
	}
	if from["a@x.test"] != "127.0.0.11 bulk.posthorn.test" || from["b@x.test"] != "127.0.0.12 posthorn.test" {
		t.Fatalf("source address and EHLO seen by the MX: %v", from)
	}
	var pools struct {
		Items []pool.MemberStatus `json:"items"`
	}
	in.CLI(&pools, "pools")
	if len(pools.Items) != 2 || pools.Items[0].Address != "127.0.0.11" || pools.Items[0].Today != 1 || pools.Items[1].Today != 1 {
		t.Errorf("pools: %+v", pools.Items)
	}

	// Blocklist: the marketing address gets listed.
	w.dns.SetA("11.0.0.127.zen.test", "127.0.0.4")
	var check struct {
		Items []blocklist.Result `json:"items"`
	}
	in.CLI(&check, "blocklist", "check")
	listed := map[string]string{}
	for _, r := range check.Items {
		listed[r.Target] = r.Listed + " " + r.Meaning
	}
	if listed["127.0.0.11"] != "true XBL: exploited host" || !strings.HasPrefix(listed["127.0.0.12"], "false") {
		t.Errorf("blocklist check: %v", listed)
	}
	// The same state on /metrics: posthorn_blocklist_listed{list, target}.
	gauge := map[string]float64{}
	for _, m := range Scrape(t, in.HTTP)["posthorn_blocklist_listed"].GetMetric() {
		var target string
		for _, l := range m.Label {
			if l.GetName() == "target" {
				target = l.GetValue()
			}
		}
		gauge[target] = m.Gauge.GetValue()
	}
	if gauge["127.0.0.11"] != 1 || gauge["127.0.0.12"] != 0 {
		t.Errorf("posthorn_blocklist_listed by target: %v", gauge)
	}
	var evs struct {
		Items []store.Event `json:"items"`
	}
	in.CLI(&evs, "events", "--type", blocklist.EventAlertFired)
	if len(evs.Items) != 1 || !strings.Contains(evs.Items[0].Detail, `"removal_url":"https://zen.test/remove"`) {
		t.Errorf("alert events: %+v", evs.Items)
	}

	// DMARC: a report about news.test, zipped, mailed to the rua address.
	xml := `<?xml version="1.0"?><feedback><report_metadata><org_name>reporter.test</org_name><report_id>r-1</report_id>
<date_range><begin>` + fmt.Sprint(time.Now().Add(-24*time.Hour).Unix()) + `</begin><end>` + fmt.Sprint(time.Now().Unix()) + `</end></date_range></report_metadata>
<policy_published><domain>news.test</domain><p>none</p></policy_published>
<record><row><source_ip>127.0.0.11</source_ip><count>10</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
<identifiers><header_from>news.test</header_from></identifiers></record>
<record><row><source_ip>198.51.100.7</source_ip><count>3</count><policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
<identifiers><header_from>news.test</header_from></identifiers></record></feedback>`
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	f, _ := zw.Create("reporter.test!news.test!1!2.xml")
	f.Write([]byte(xml))
	zw.Close()
	inbound := fmt.Sprintf("127.0.0.1:%d", inPort)
	if text := mailInbound(t, inbound, "dmarc@bounces.test", reportMail(zb.Bytes())); !strings.Contains(text, "2 records stored") {
		t.Errorf("report reply %q", text)
	}
	var sum dmarc.Summary
	in.CLI(&sum, "dmarc", "report", "news.test", "--since", "72h")
	if sum.Messages != 13 || sum.DMARCPass != 10 || len(sum.NotOurs) != 1 || sum.NotOurs[0] != "198.51.100.7" {
		t.Errorf("dmarc summary: %+v", sum)
	}
	// The HTTP API: admin sees pools and any domain's summary; a read-only
	// key sees only its tenant's sending domains.
	var items struct {
		Items []pool.MemberStatus `json:"items"`
	}
	if code := in.call(t, in.Creds.APIKey, "GET", "/v1/pools", nil, nil, &items); code != 200 || len(items.Items) != 2 {
		t.Errorf("GET /v1/pools: %d %+v", code, items)
	}
	var viaAPI dmarc.Summary
	if code := in.call(t, in.Creds.APIKey, "GET", "/v1/dmarc?domain=news.test&since=72h", nil, nil, &viaAPI); code != 200 || viaAPI.Messages != 13 {
		t.Errorf("GET /v1/dmarc: %d %+v", code, viaAPI)
	}
	var key api.KeyResponse
	in.CLI(&key, "apikey", "create", "--scope", "read", "--name", "reader")
	if code := in.call(t, key.APIKey, "GET", "/v1/dmarc?domain=news.test", nil, nil, nil); code != 403 {
		t.Errorf("read key, not its domain: %d, want 403", code)
	}
	if code := in.call(t, key.APIKey, "GET", "/v1/pools", nil, nil, nil); code != 403 {
		t.Errorf("read key, pools: %d, want 403", code)
	}
	in.CLI(nil, "domain", "add", "news.test")
	if code := in.call(t, key.APIKey, "GET", "/v1/dmarc?domain=news.test", nil, nil, &viaAPI); code != 200 || viaAPI.Messages != 13 {
		t.Errorf("read key, its own domain: %d %+v", code, viaAPI)
	}

	// A malformed report: refused, the listener lives on.
	c, err := Dial(inbound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect(t, c, "EHLO mx.remote.test", 250, "")
	expect(t, c, "MAIL FROM:<reports@reporter.test>", 250, "")
	expect(t, c, "RCPT TO:<dmarc@bounces.test>", 250, "")
	expect(t, c, "DATA", 354, "")
	if text, _ := c.Cmd(0, dotStuff(reportMail(zb.Bytes()[:zb.Len()/2]))+"."); !strings.HasPrefix(text, "550 5.6.0") {
		t.Errorf("truncated report: %q, want 550 5.6.0", text)
	}
	expect(t, c, "RSET", 250, "")
	var again dmarc.Summary
	in.CLI(&again, "dmarc", "report", "news.test")
	if b, _ := json.Marshal(again); again.Messages != 13 {
		t.Errorf("after the refused report: %s", b)
	}
}

// reportMail is a report mail with att as its zip attachment.
func reportMail(att []byte) string {
	enc := base64.StdEncoding.EncodeToString(att)
	var lines []string
	for len(enc) > 76 {
		lines, enc = append(lines, enc[:76]), enc[76:]
	}
	lines = append(lines, enc)
	return "From: reports@reporter.test\r\nTo: dmarc@bounces.test\r\nSubject: Report Domain: news.test\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nreport\r\n" +
		"--x\r\nContent-Type: application/zip; name=\"r.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		strings.Join(lines, "\r\n") + "\r\n--x--\r\n"
}
