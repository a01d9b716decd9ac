package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/classify"
	"github.com/posthorn/posthorn/internal/smtpproto"
)

// classifyCmd classifies one SMTP reply offline with the same rules the
// delivery engine uses (internal/classify).
func classifyCmd(g *globals) *cobra.Command {
	var phase, rulesPath string
	var replace, list bool
	var attempt int
	cmd := &cobra.Command{
		Use:   "classify [flags] 'REPLY'",
		Short: "Classify an SMTP reply as the delivery engine would (offline)",
		Long: `Classify one SMTP reply, as a remote server sent it, into the class that decides
what posthorn does next: delivered, deferred, rate_limited, mailbox_full,
hard_bounce, policy_block, connection_error, dns_error, tls_error, tls_policy or
protocol_error. No server is needed.

The reply is one line ("550 5.1.1 user unknown") or several separated by
newlines or a literal \n ('550-5.7.1 first\n550 5.7.1 second'); "-" reads it
from standard input. With --json the matching rule is shown too.

--rules adds a rules file in front of the built-in rules (or replaces them
with --replace-rules). The rules file format (fields, order, examples, how to
test a rule) is in docs/classify.md of posthorn's documentation.`,
		Example: `  posthorn classify '550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown'
  posthorn classify --phase data --json '421 4.7.28 Our system has detected an unusual rate of unsolicited mail'
  posthorn classify --attempt 8 '450 4.1.1 <bob@example.com>: User unknown in virtual alias table'
  posthorn classify --rules ./my-rules.toml --list`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := classify.Load(rulesPath, replace)
			if err != nil {
				return err
			}
			if list {
				if len(args) > 0 {
					return errors.New("--list takes no reply")
				}
				return printRules(g, c.Rules())
			}
			if len(args) == 0 {
				return errors.New("give the reply to classify, e.g. posthorn classify '550 5.1.1 user unknown'")
			}
			text := strings.Join(args, " ")
			if text == "-" {
				b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
				if err != nil {
					return err
				}
				text = string(b)
			}
			text = strings.ReplaceAll(strings.ReplaceAll(text, `\r\n`, "\n"), `\n`, "\n")
			r, err := smtpproto.ParseReply(strings.TrimSpace(text))
			if err != nil {
				return err
			}
			res := c.ClassifyAttempt(phase, r, attempt)
			if !g.json {
				fmt.Println(res.Class)
				return nil
			}
			return printJSON(classifyOutput{
				Reply: r, Phase: phase, Class: res.Class, Permanent: res.Class.Permanent(),
				Rule:     matchedRule{Name: res.Rule, Pattern: res.Pattern, Source: res.Source, Provider: res.Provider, Note: res.Note},
				Enhanced: res.Enhanced, Inferred: res.Inferred,
				Attempt: attempt, EscalateAfter: res.EscalateAfter, Escalated: res.Escalated,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&phase, "phase", "", "the command the reply answered: connect, ehlo, mail, rcpt, data, data-end, starttls, auth (default: unknown, judged like rcpt)")
	f.StringVar(&rulesPath, "rules", "", "rules file (TOML) to put in front of the built-in rules")
	f.BoolVar(&replace, "replace-rules", false, "use only the --rules file, without the built-in rules")
	f.IntVar(&attempt, "attempt", 1, "the delivery attempt this reply answered (rules with escalate_after use it)")
	f.BoolVar(&list, "list", false, "list the rules in the order they are tried")
	return cmd
}

type matchedRule struct {
	Name     string `json:"name"`
	Pattern  string `json:"pattern,omitempty"`
	Source   string `json:"source"`
	Provider string `json:"provider,omitempty"`
	Note     string `json:"note,omitempty"`
}

type classifyOutput struct {
	Reply         smtpproto.Reply `json:"reply"`
	Phase         string          `json:"phase,omitempty"`
	Class         classify.Class  `json:"class"`
	Permanent     bool            `json:"permanent"`
	Rule          matchedRule     `json:"rule"`
	Enhanced      string          `json:"enhanced,omitempty"`
	Inferred      bool            `json:"enhanced_inferred,omitempty"`
	Attempt       int             `json:"attempt"`
	EscalateAfter int             `json:"escalate_after,omitempty"`
	Escalated     bool            `json:"escalated,omitempty"`
}

func printRules(g *globals, rules []classify.Rule) error {
	if g.json {
		return printJSON(rules)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "#\tNAME\tCLASS\tSOURCE\tMATCHES")
	for i, r := range rules {
		var m []string
		if len(r.Phases) > 0 {
			m = append(m, "phase "+strings.Join(r.Phases, ","))
		}
		if len(r.Codes) > 0 {
			m = append(m, "code "+strings.Join(r.Codes, ","))
		}
		if len(r.Enhanced) > 0 {
			m = append(m, "status "+strings.Join(r.Enhanced, ","))
		}
		if len(r.Text) > 0 {
			m = append(m, fmt.Sprintf("%d text patterns", len(r.Text)))
		}
		if r.EscalateAfter > 0 {
			m = append(m, fmt.Sprintf("%s after %d attempts", r.EscalateTo, r.EscalateAfter))
		}
		if len(m) == 0 {
			m = append(m, "anything")
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", i+1, r.Name, r.Class, r.Source, strings.Join(m, "; "))
	}
	return w.Flush()
}
