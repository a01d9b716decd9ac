package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/posthorn/posthorn/internal/bounce"
)

// bounceCmd groups the offline bounce tools.
func bounceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bounce",
		Short: "Inspect bounce (DSN), complaint (ARF) and auto-reply messages",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "parse FILE.eml",
		Short: "Show what the bounce parser finds in one message (\"-\" reads standard input); works offline",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := readMessage(args[0])
			if err != nil {
				return err
			}
			rep, err := bounce.Parse(raw)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(struct {
					*bounce.Report
					Token string `json:"verp_token,omitempty"`
				}{rep, rep.Token()})
			}
			printBounce(os.Stdout, rep)
			return nil
		},
	})
	return cmd
}

func readMessage(path string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	// Parse looks at the first bounce.MaxMessageSize bytes only.
	return io.ReadAll(io.LimitReader(r, bounce.MaxMessageSize+1))
}

func printBounce(w io.Writer, rep *bounce.Report) {
	switch rep.Kind {
	case bounce.KindNotBounce:
		fmt.Fprintln(w, "not a bounce")
	case bounce.KindAutoReply:
		fmt.Fprintln(w, "automatic reply (not a bounce)")
	case bounce.KindARF:
		fmt.Fprintf(w, "feedback report (%s): type %s\n", rep.Format, rep.Feedback.Type)
	default:
		fmt.Fprintf(w, "delivery status notification (%s)\n", rep.Format)
	}
	if rep.ReportingMTA != "" {
		fmt.Fprintf(w, "reporting MTA: %s\n", rep.ReportingMTA)
	}
	if fb := rep.Feedback; fb != nil {
		if fb.OriginalMailFrom != "" {
			fmt.Fprintf(w, "original mail from: %s\n", fb.OriginalMailFrom)
		}
		if fb.SourceIP != "" {
			fmt.Fprintf(w, "source IP: %s\n", fb.SourceIP)
		}
		if fb.UserAgent != "" {
			fmt.Fprintf(w, "user agent: %s\n", fb.UserAgent)
		}
	}
	if len(rep.Recipients) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if rep.Kind == bounce.KindDSN {
			fmt.Fprintln(tw, "RECIPIENT\tACTION\tSTATUS\tREPLY\tREASON\tCLASS\tHARD")
			for _, r := range rep.Recipients {
				reply := "-"
				if r.ReplyCode != 0 {
					reply = fmt.Sprint(r.ReplyCode)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", r.Address, dash(r.Action), dash(r.Status), reply, dash(string(r.Reason)), dash(string(r.Class)), r.Hard)
			}
		} else {
			fmt.Fprintln(tw, "RECIPIENT")
			for _, r := range rep.Recipients {
				fmt.Fprintln(tw, r.Address)
			}
		}
		tw.Flush()
		if rep.Kind == bounce.KindDSN {
			for _, r := range rep.Recipients {
				if r.Diagnostic != "" {
					fmt.Fprintf(w, "%s: %s\n", r.Address, oneLine(r.Diagnostic, 300))
				}
			}
		}
	} else if rep.Kind == bounce.KindDSN {
		fmt.Fprintln(w, "no recipient found")
	}
	o := rep.Original
	for _, kv := range [][2]string{{"original message-id", o.MessageID}, {"original return-path", o.ReturnPath}, {"original to", o.To}, {"original subject", o.Subject}} {
		if kv[1] != "" {
			fmt.Fprintf(w, "%s: %s\n", kv[0], oneLine(kv[1], 200))
		}
	}
	keys := make([]string, 0, len(o.Posthorn))
	for k := range o.Posthorn {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "original %s: %s\n", k, oneLine(o.Posthorn[k], 200))
	}
	if t := rep.Token(); t != "" {
		fmt.Fprintf(w, "VERP token: %s\n", t)
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}
