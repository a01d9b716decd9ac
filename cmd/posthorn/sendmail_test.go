package main

import (
	"strings"
	"testing"
)

func TestSendmailArgs(t *testing.T) {
	g := &globals{}
	o, err := parseSendmailArgs(g, []string{"-t", "-oi", "-fbounce@app.test", "-F", "Cron Daemon", "-odi", "-oem", "--data-dir", "/x", "a@b.test"})
	if err != nil || !o.extract || !o.ignoreDots || o.sender != "bounce@app.test" || o.fullName != "Cron Daemon" || g.dataDir != "/x" ||
		len(o.rcpts) != 1 || o.rcpts[0] != "a@b.test" {
		t.Fatalf("parsed %+v (data dir %q): %v", o, g.dataDir, err)
	}
	for _, bad := range [][]string{{"-bs"}, {"-f"}, {"--bogus"}, {"-q"}} {
		if _, err := parseSendmailArgs(&globals{}, bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestSendmailMessage(t *testing.T) {
	in := "To: a@x.test, \"B\" <b@x.test>\nCc: c@x.test\nBcc: secret@x.test,\n  other@x.test\nSubject: hi\n\nline\n.\nafter the dot\n"
	req, err := buildSendmail(&sendmailOpts{extract: true, ignoreDots: true}, []byte(in), "www-data", "host.test")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(req.Recipients, " "); got != "a@x.test b@x.test c@x.test secret@x.test other@x.test" {
		t.Fatalf("recipients %q", got)
	}
	msg := string(req.Message)
	if strings.Contains(msg, "Bcc") || strings.Contains(msg, "secret@") || strings.Contains(msg, "other@") {
		t.Fatalf("Bcc left in the message:\n%s", msg)
	}
	if !strings.HasPrefix(msg, "From: <www-data@host.test>\n") || req.Sender != "www-data@host.test" || !strings.Contains(msg, "after the dot") {
		t.Fatalf("sender %q message:\n%s", req.Sender, msg)
	}
	// Without -i a lone dot ends the message; the From header gives the sender.
	req, err = buildSendmail(&sendmailOpts{rcpts: []string{"r@x.test"}, fullName: "Ignored"}, []byte("From: App <app@app.test>\n\nbody\n.\nnot sent\n"), "u", "h")
	if err != nil || req.Sender != "app@app.test" || strings.Contains(string(req.Message), "not sent") || strings.Count(string(req.Message), "From:") != 1 {
		t.Fatalf("%+v %v", req, err)
	}
	// -f <> is the null sender; a From is still added, with -F's name.
	req, err = buildSendmail(&sendmailOpts{rcpts: []string{"r@x.test"}, sender: "<>", senderSet: true, fullName: "Cron Daemon"}, []byte("Subject: x\n\nbody\n"), "root", "h.test")
	if err != nil || req.Sender != "" || !strings.HasPrefix(string(req.Message), "From: \"Cron Daemon\" <root@h.test>\n") {
		t.Fatalf("%+v %q %v", req, req.Message, err)
	}
	// cron: sendmail -FCronDaemon -i -B8BITMIME -oem root
	o, err := parseSendmailArgs(&globals{}, []string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"})
	if err != nil {
		t.Fatal(err)
	}
	req, err = buildSendmail(o, []byte("Subject: Cron <root@h> backup\n\nok\n"), "root", "h.test")
	if err != nil || req.Recipients[0] != "root@h.test" || req.Sender != "root@h.test" || !strings.HasPrefix(string(req.Message), "From: \"CronDaemon\" <root@h.test>") {
		t.Fatalf("cron: %+v %q %v", req, req.Message, err)
	}
	if _, err := buildSendmail(&sendmailOpts{extract: true}, []byte("Subject: x\n\nbody\n"), "u", "h"); err != errNoRecipients {
		t.Fatalf("no recipients: %v", err)
	}
}
