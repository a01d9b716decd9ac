package strictjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

type address struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

type inner struct {
	From    address           `json:"from"`
	To      []address         `json:"to"`
	Text    string            `json:"text"`
	Headers map[string]string `json:"headers"`
}

type request struct {
	inner
	Lane  string          `json:"lane"`
	Extra map[string]any  `json:"extra"`
	Raw   json.RawMessage `json:"raw"`
}

func TestDecodeRefusesDuplicateKeys(t *testing.T) {
	cases := []struct {
		name, in, key, path string
	}{
		{"top level", `{"text":"a","text":"b"}`, "text", ""},
		{"case variant of a field", `{"text":"a","Text":"b"}`, "Text", ""},
		{"embedded struct field", `{"lane":"high","LANE":"low"}`, "LANE", ""},
		{"nested struct", `{"from":{"email":"a@x","email":"b@x"}}`, "email", "from"},
		{"struct in array", `{"to":[{"email":"a@x"},{"name":"n","Name":"m"}]}`, "Name", "to[1]"},
		{"exact repeat in a map", `{"headers":{"X-A":"1","X-A":"2"}}`, "X-A", "headers"},
		{"in an interface value", `{"extra":{"a":{"b":1,"b":2}}}`, "b", "extra.a"},
		{"under an opaque type", `{"raw":{"k":1,"K":2}}`, "K", "raw"},
	}
	for _, c := range cases {
		var r request
		err := Decode([]byte(c.in), &r)
		var de *DuplicateKeyError
		if !errors.As(err, &de) || de.Key != c.key || de.Path != c.path {
			t.Errorf("%s: %s: err %v, want duplicate %q at %q", c.name, c.in, err, c.key, c.path)
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	in := `{"from":{"name":"A","email":"a@x"},"to":[{"email":"b@x"},{"email":"c@x"}],"text":"hi",
		"headers":{"X-A":"1","x-a":"2"},"lane":"high","extra":{"a":1,"A":[1,{"b":2}]},"raw":{"k":1}}`
	var r request
	if err := Decode([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if r.From.Email != "a@x" || len(r.To) != 2 || r.Headers["x-a"] != "2" || r.Lane != "high" || len(r.Extra) != 2 {
		t.Fatalf("decoded %+v", r)
	}
}

func TestDecodeRefusesOtherBadInput(t *testing.T) {
	for _, in := range []string{``, `{`, `{"text":"a"} {}`, `{"text":"a"}x`, `{"colour":"red"}`, `{"text":1}`, `[1,]`} {
		var r request
		if err := Decode([]byte(in), &r); err == nil || !strings.Contains(err.Error(), "JSON") && !strings.Contains(err.Error(), "json") {
			t.Errorf("%q: err %v, want a JSON error", in, err)
		}
	}
}

func TestKeySetFoldsOnlyForStructs(t *testing.T) {
	s := NewKeySet(reflect.TypeFor[map[string]int](), "m")
	if s.Add("a") != nil || s.Add("A") != nil || s.Add("a") == nil {
		t.Error("map keys: want exact comparison")
	}
	s = NewKeySet(reflect.TypeFor[request](), "")
	if s.Add("k") != nil || s.Add("\u212a") == nil { // KELVIN SIGN folds to k, as in encoding/json
		t.Error("struct keys: want case-insensitive comparison")
	}
}

// fastText decodes {"text":"..."} (plain strings only) itself.
type fastText struct {
	Text string `json:"text"`
	fast bool
}

func (f *fastText) DecodeFast(data []byte) bool {
	l := NewLexer(data)
	var r fastText
	l.Open('{')
	for n := 0; l.More('}', n); n++ {
		if string(l.Key()) != "text" || n > 0 {
			l.Fail()
		}
		r.Text = l.String()
	}
	if !l.End() {
		return false
	}
	r.fast = true
	*f = r
	return true
}

func TestDecodeTriesFastDecoderFirst(t *testing.T) {
	var f fastText
	if err := Decode([]byte(` {"text":"a\nb"} `), &f); err != nil || !f.fast || f.Text != "a\nb" {
		t.Errorf("usual input: %+v %v", f, err)
	}
	for _, in := range []string{`{"text":"a","text":"b"}`, `{"Text":"a","text":"b"}`, `{"text":1}`, `{"text":"a"} x`, `{"text":"a",}`} {
		f = fastText{}
		if err := Decode([]byte(in), &f); err == nil || f.fast {
			t.Errorf("%s: %+v %v, want the general path's error", in, f, err)
		}
	}
	f = fastText{}
	if err := Decode([]byte(`{"TEXT":"a"}`), &f); err != nil || f.fast || f.Text != "a" {
		t.Errorf("case variant: %+v %v, want the general path's result", f, err)
	}
}
