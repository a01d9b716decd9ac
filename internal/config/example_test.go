package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestExampleListsEveryKey checks the example's claim to list every key,
// both ways: every key of Config (and of its sections and arrays of
// tables) is in docs/posthorn.example.toml, set or commented out under
// its section; and every key the example sets is one Config knows (Load
// refuses unknown keys, and TestExampleConfig loads the example).
func TestExampleListsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../docs/posthorn.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	sections := splitSections(string(b))
	var walk func(typ reflect.Type, section string)
	walk = func(typ reflect.Type, section string) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if key == "" || key == "-" {
				continue
			}
			name := key // a section nested in a section is [outer.inner]
			if section != "" {
				name = section + "." + key
			}
			ft := f.Type
			if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(Duration{}) {
				if _, ok := sections[name]; !ok {
					t.Errorf("section [%s] is not in the example", name)
					continue
				}
				walk(ft, name)
				continue
			}
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem() != reflect.TypeOf(Duration{}) {
				if _, ok := sections[name]; !ok {
					t.Errorf("array of tables [[%s]] is not in the example", name)
					continue
				}
				walk(ft.Elem(), name)
				continue
			}
			re := regexp.MustCompile(`(?m)^#?\s*` + regexp.QuoteMeta(key) + `\s*=`)
			if !re.MatchString(sections[section]) {
				where := "the top level"
				if section != "" {
					where = "[" + section + "]"
				}
				t.Errorf("key %s of %s is not in the example", key, where)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
}

// splitSections maps each section name ("" for the top) to its text;
// commented-out headers ("# [[route]]") count, as the example shows
// arrays of tables commented out.
func splitSections(text string) map[string]string {
	out := map[string]string{}
	header := regexp.MustCompile(`^#?\s*\[\[?([a-z_.]+)\]\]?\s*(#.*)?$`)
	cur := ""
	for _, line := range strings.Split(text, "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			cur = m[1]
			out[cur] += ""
			continue
		}
		out[cur] += line + "\n"
	}
	return out
}
