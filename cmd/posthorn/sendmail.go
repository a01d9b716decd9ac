package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"os"
	"os/user"
	"strings"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/api/adminclient"
)

// posthorn sendmail: the sendmail command-line interface (what cron, PHP's
// mail() and many scripts call as /usr/sbin/sendmail). It reads a message
// on stdin and queues it through the admin socket, as the tenant in
// [sendmail] tenant of the server's configuration. Invoked as "sendmail"
// (a symlink), posthorn behaves as this command; it then finds its
// configuration in $POSTHORN_CONFIG or /etc/posthorn/posthorn.toml and its
// data directory in $POSTHORN_DATA_DIR (or the config's data_dir).
//
// Exit codes are sendmail's (sysexits.h).
const (
	exOK       = 0
	exUsage    = 64 // bad options, no recipients
	exDataErr  = 65 // the message or an address was refused
	exNoPerm   = 77 // the sender domain is not allowed
	exTempFail = 75 // the server is down or could not queue: try again later
	exConfig   = 78 // the configuration cannot be read
)

// defaultSendmailConfig is read when posthorn runs as sendmail without
// $POSTHORN_CONFIG.
const defaultSendmailConfig = "/etc/posthorn/posthorn.toml"

func sendmailCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "sendmail [-t] [-i] [-f sender] [-F name] [-oi] [recipient...]",
		Short: "Queue a message read on stdin, like sendmail (for cron, PHP mail() and scripts)",
		Long: "Reads a message on stdin and queues it for the [sendmail] tenant. -t takes recipients from To, Cc and Bcc\n" +
			"(and removes Bcc); -i/-oi: a line with a single dot does not end the message; -f sets the envelope sender,\n" +
			"-F the From name when the message has no From. Exit status: 0 queued, 64 usage, 65 refused, 75 server down\n" +
			"(try later), 77 sender domain not allowed. Link /usr/sbin/sendmail to posthorn to use it as sendmail.",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			os.Exit(runSendmail(g, args, os.Stdin, os.Stderr))
			return nil
		},
	}
}

// sendmailOpts are the parsed options.
type sendmailOpts struct {
	extract    bool // -t
	ignoreDots bool // -i, -oi
	sender     string
	senderSet  bool
	fullName   string
	rcpts      []string
}

// parseSendmailArgs reads sendmail's traditional options (single dash,
// values attached or separate); options posthorn has no use for (-odi,
// -oem, -v, -bm, ...) are accepted and ignored. --data-dir and --config
// are posthorn's own.
func parseSendmailArgs(g *globals, args []string) (*sendmailOpts, error) {
	o := &sendmailOpts{}
	withValue := func(i *int, a, flag string) (string, error) {
		if v := strings.TrimPrefix(a, flag); v != "" {
			return strings.TrimPrefix(v, "="), nil
		}
		if *i+1 >= len(args) {
			return "", fmt.Errorf("option %s needs a value", flag)
		}
		*i++
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var err error
		switch {
		case a == "--":
			o.rcpts = append(o.rcpts, args[i+1:]...)
			return o, nil
		case strings.HasPrefix(a, "--data-dir"):
			g.dataDir, err = withValue(&i, a, "--data-dir")
		case strings.HasPrefix(a, "--config"):
			g.configPath, err = withValue(&i, a, "--config")
		case a == "-t":
			o.extract = true
		case a == "-i" || a == "-oi":
			o.ignoreDots = true
		case strings.HasPrefix(a, "-f") || strings.HasPrefix(a, "-r"):
			o.sender, err = withValue(&i, a, a[:2])
			o.senderSet = true
		case strings.HasPrefix(a, "-F"):
			o.fullName, err = withValue(&i, a, "-F")
		case a == "-bs" || a == "-bp" || a == "-bd" || a == "-bi" || a == "-bv" || a == "-bt":
			return nil, fmt.Errorf("mode %s is not supported (posthorn sendmail only queues a message from stdin)", a)
		case strings.HasPrefix(a, "-N") || strings.HasPrefix(a, "-R") || strings.HasPrefix(a, "-B") ||
			strings.HasPrefix(a, "-L") || strings.HasPrefix(a, "-h") || strings.HasPrefix(a, "-X") || strings.HasPrefix(a, "-V"):
			_, err = withValue(&i, a, a[:2]) // options with a value we ignore
		case strings.HasPrefix(a, "-o") || strings.HasPrefix(a, "-b") || a == "-v" || a == "-m" || a == "-U" || a == "-G" || a == "-n":
			// accepted, no effect
		case strings.HasPrefix(a, "-") && a != "-":
			return nil, fmt.Errorf("unknown option %s", a)
		default:
			o.rcpts = append(o.rcpts, a)
		}
		if err != nil {
			return nil, err
		}
	}
	return o, nil
}

// runSendmail does the whole command and returns the exit status.
func runSendmail(g *globals, args []string, stdin io.Reader, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "sendmail: "+format+"\n", a...)
		return code
	}
	o, err := parseSendmailArgs(g, args)
	if err != nil {
		return fail(exUsage, "%v", err)
	}
	if g.configPath == "" {
		if p := os.Getenv("POSTHORN_CONFIG"); p != "" {
			g.configPath = p
		} else if _, err := os.Stat(defaultSendmailConfig); err == nil {
			g.configPath = defaultSendmailConfig
		}
	}
	if g.dataDir == "" {
		g.dataDir = os.Getenv("POSTHORN_DATA_DIR")
	}
	raw, err := io.ReadAll(io.LimitReader(stdin, 256<<20))
	if err != nil {
		return fail(exDataErr, "read message: %v", err)
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return fail(exConfig, "%v", err)
	}
	host := cfg.Hostname
	if host == "" {
		host = localHostname()
	}
	req, err := buildSendmail(o, raw, localLogin(), host)
	if err != nil {
		if errors.Is(err, errNoRecipients) {
			return fail(exUsage, "%v", err)
		}
		return fail(exDataErr, "%v", err)
	}
	c, err := g.sendmailClient()
	if err != nil {
		return fail(exConfig, "%v", err)
	}
	var res api.SendmailResponse
	err = c.Do(context.Background(), "POST", "/admin/v1/sendmail", nil, req, &res)
	var se *adminclient.StatusError
	switch {
	case err == nil:
		return exOK
	case errors.As(err, &se) && se.Status == http.StatusForbidden:
		return fail(exNoPerm, "%s", se.Message)
	case errors.As(err, &se) && se.Status < 500:
		return fail(exDataErr, "%s", se.Message)
	default: // the server is not there, or failed: try again later
		return fail(exTempFail, "%v", err)
	}
}

var errNoRecipients = errors.New("no recipients: give them as arguments, or use -t to read To, Cc and Bcc")

// buildSendmail turns stdin and the options into the envelope and the
// message to queue: the end of input at a lone dot (without -i), the
// recipients of -t (Bcc removed), the envelope sender (-f, else the From
// address, else login@hostname), a From header when there is none, and
// bare local names ("root") qualified with @hostname.
func buildSendmail(o *sendmailOpts, raw []byte, login, hostname string) (*api.SendmailRequest, error) {
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	if !o.ignoreDots {
		if i := bytes.Index(raw, []byte("\n.\n")); i >= 0 {
			raw = raw[:i+1]
		} else if bytes.HasPrefix(raw, []byte(".\n")) || bytes.Equal(raw, []byte(".")) {
			raw = nil
		}
	}
	header, body := raw, []byte(nil)
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		header, body = raw[:i+1], raw[i+1:]
	} else if bytes.HasPrefix(raw, []byte("\n")) {
		header, body = nil, raw
	}
	fields := splitFields(header)
	rcpts := append([]string(nil), o.rcpts...)
	var kept [][]byte
	var from string
	mailParser := newMailParser()
	for _, f := range fields {
		name, value := fieldName(f), fieldValue(f)
		switch strings.ToLower(name) {
		case "to", "cc", "bcc":
			if o.extract && strings.TrimSpace(value) != "" {
				list, err := mailParser.ParseList(value)
				if err != nil {
					return nil, fmt.Errorf("%s header: %v", name, err)
				}
				for _, a := range list {
					rcpts = append(rcpts, a.Address)
				}
			}
			if o.extract && strings.EqualFold(name, "bcc") {
				continue // Bcc recipients stay secret
			}
		case "from":
			if a, err := mailParser.Parse(value); err == nil && from == "" {
				from = a.Address
			}
		}
		kept = append(kept, f)
	}
	if len(rcpts) == 0 {
		return nil, errNoRecipients
	}
	for i, r := range rcpts {
		rcpts[i] = qualify(r, hostname)
	}
	sender := o.sender
	if !o.senderSet {
		sender = from
	}
	if sender == "<>" {
		sender = ""
	}
	if !o.senderSet && sender == "" {
		sender = login + "@" + hostname
	}
	sender = strings.Trim(sender, "<>")
	if sender != "" {
		sender = qualify(sender, hostname)
	}
	var msg bytes.Buffer
	if from == "" {
		addr := sender
		if addr == "" {
			addr = login + "@" + hostname
		}
		fmt.Fprintf(&msg, "From: %s\n", (&mail.Address{Name: o.fullName, Address: addr}).String())
	}
	for _, f := range kept {
		msg.Write(f)
	}
	msg.Write(body)
	return &api.SendmailRequest{Sender: sender, Recipients: rcpts, Message: msg.Bytes(), LocalUser: login}, nil
}

// qualify adds @hostname to a bare local name ("root", as cron sends
// to), as sendmail does.
func qualify(addr, hostname string) string {
	if strings.Contains(addr, "@") {
		return addr
	}
	return addr + "@" + hostname
}

// newMailParser reads addresses whatever the charset of display names.
func newMailParser() *mail.AddressParser {
	return &mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
}

// splitFields cuts a header section into fields, each with its folded
// continuation lines and final newline.
func splitFields(h []byte) [][]byte {
	var out [][]byte
	for len(h) > 0 {
		end := bytes.IndexByte(h, '\n') + 1
		if end == 0 {
			end = len(h)
		}
		for end < len(h) && (h[end] == ' ' || h[end] == '\t') {
			next := bytes.IndexByte(h[end:], '\n')
			if next < 0 {
				end = len(h)
				break
			}
			end += next + 1
		}
		out = append(out, h[:end])
		h = h[end:]
	}
	return out
}

func fieldName(f []byte) string {
	i := bytes.IndexByte(f, ':')
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(string(f[:i]))
}

func fieldValue(f []byte) string {
	i := bytes.IndexByte(f, ':')
	if i < 0 {
		return ""
	}
	return strings.NewReplacer("\r", "", "\n", "").Replace(string(f[i+1:]))
}

func localLogin() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "nobody"
}

func localHostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// sendmailClient talks to the sendmail socket when it exists (local users
// may use it), else to the admin socket (root, posthorn's own user).
func (g *globals) sendmailClient() (*adminclient.Client, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	if p := cfg.SendmailSocket(); p != "" {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return adminclient.NewSendmailClient(p), nil
		}
	}
	return adminclient.NewClient(cfg.AdminSocket()), nil
}
