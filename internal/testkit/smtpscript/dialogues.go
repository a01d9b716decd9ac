package smtpscript

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Dialogue is one aiosmtpd command/reply-code case from dialogues.json.
type Dialogue struct {
	ID string `json:"id"` // e.g. "TestSMTP.test_helo"
	// ClassDecorators and TestDecorators are the Python decorators of the
	// upstream test class and function. They record the server
	// configuration the case assumes (e.g. "auth_required=True",
	// "enable_SMTPUTF8=True"); see HasDecorator.
	ClassDecorators []string       `json:"class_decorators"`
	TestDecorators  []string       `json:"test_decorators"`
	Params          map[string]any `json:"params"` // pytest parameters
	Steps           []DialogueStep `json:"steps"`
	Source          string         `json:"source"` // upstream file and line

	File  string `json:"-"` // base name of the file it was loaded from
	Index int    `json:"-"` // 1-based position in that file
}

// DialogueStep is one command and the reply code it must get.
type DialogueStep struct {
	Send       string `json:"send"` // sent followed by CRLF
	ExpectCode int    `json:"expect_code"`
	// ReplyText and StatusName are aiosmtpd's wording; informational only.
	ReplyText  string `json:"aiosmtpd_reply_text,omitempty"`
	StatusName string `json:"aiosmtpd_status_name,omitempty"`
}

// Class returns the upstream test class, the part of ID before the first
// dot ("TestSMTP", "TestRequiredAuthentication", ...).
func (d Dialogue) Class() string {
	c, _, _ := strings.Cut(d.ID, ".")
	return c
}

// Decorators returns the class decorators followed by the test decorators.
func (d Dialogue) Decorators() []string {
	return append(append([]string(nil), d.ClassDecorators...), d.TestDecorators...)
}

// HasDecorator reports whether any class or test decorator contains substr,
// ignoring whitespace differences (decorators span several lines
// upstream). Use it to drop cases that assume a configuration you do not
// have, e.g. HasDecorator("auth_required=True").
func (d Dialogue) HasDecorator(substr string) bool {
	want := strings.Join(strings.Fields(substr), "")
	for _, dec := range d.Decorators() {
		if strings.Contains(strings.Join(strings.Fields(dec), ""), want) {
			return true
		}
	}
	return false
}

type dialogueFile struct {
	Cases []Dialogue `json:"cases"`
}

// LoadDialogues reads an aiosmtpd dialogues.json file.
func LoadDialogues(path string) ([]Dialogue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f dialogueFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	base := filepath.Base(path)
	for i := range f.Cases {
		d := &f.Cases[i]
		d.File, d.Index = base, i+1
		if d.ID == "" || len(d.Steps) == 0 {
			return nil, fmt.Errorf("%s: case %d has no id or no steps", path, i+1)
		}
		for j, st := range d.Steps {
			if st.ExpectCode < 200 || st.ExpectCode > 599 {
				return nil, fmt.Errorf("%s: %s step %d: bad expect_code %d", path, d.ID, j+1, st.ExpectCode)
			}
		}
	}
	return f.Cases, nil
}

// FilterDialogues returns the dialogues for which keep returns true.
func FilterDialogues(ds []Dialogue, keep func(Dialogue) bool) []Dialogue {
	var out []Dialogue
	for _, d := range ds {
		if keep(d) {
			out = append(out, d)
		}
	}
	return out
}

// RunDialogue plays one dialogue on a fresh connection: it reads the 220
// greeting, then sends each step's command + CRLF and checks the reply
// code exactly.
func RunDialogue(ctx context.Context, t Target, d Dialogue) CaseResult {
	res := CaseResult{File: d.File, Index: d.Index, Name: d.ID}
	ss := &session{ctx: ctx, t: t}
	start := time.Now()
	err := ss.connect()
	if err == nil {
		err = ss.dialogue(d)
	}
	ss.close()
	res.Duration = time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%v (context: %v)", err, ctx.Err())
		}
		res.Err = err.Error()
		ss.logf("-- FAIL: %s", res.Err)
	} else {
		res.Pass = true
	}
	res.Transcript = ss.tr.String()
	return res
}

// RunDialogues runs each dialogue in turn.
func RunDialogues(ctx context.Context, t Target, ds []Dialogue) []CaseResult {
	out := make([]CaseResult, 0, len(ds))
	for _, d := range ds {
		out = append(out, RunDialogue(ctx, t, d))
	}
	return out
}

func (ss *session) dialogue(d Dialogue) error {
	rep, err := ss.readReply("greeting")
	if err != nil {
		return err
	}
	if rep.Code != 220 {
		return fmt.Errorf("greeting: expected 220, got %s", rep)
	}
	for i, st := range d.Steps {
		at := fmt.Sprintf("step %d (%s)", i+1, clip(st.Send, 60))
		if err := ss.write(at, st.Send+"\r\n"); err != nil {
			return err
		}
		rep, err := ss.readReply(at)
		if err != nil {
			return err
		}
		if rep.Code != st.ExpectCode {
			return fmt.Errorf("%s: expected %d, got %s", at, st.ExpectCode, rep)
		}
	}
	return nil
}

// clip shortens s to at most n bytes for messages.
func clip(s string, n int) string {
	s = visible(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
