package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzScanner: on valid JSON the byte scanner of CheckKeys reports what
// the json.Decoder walk it replaced reports (kept here as the reference).
func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{"text":"a"}`, `{"text":"a","text":"b"}`, `{"to":[{"email":"a"},{"EMAIL":"b","email":"c"}]}`,
		`{"headers":{"a":"1","A":"2"}}`, `{"extra":{"x":[{"y":1,"y":2}]}}`, `{"raw":{"k":1,"K":2}}`, `[]`, `"x"`,
		`{"t\u0065xt":"a","text":"b"}`, ` { "a" : [ 1 , { "b" : null , "b" : true } ] } `, `{"k\"":1,"k\"":2}`, `{"text":"a\"b\\","text":"\\"}`, `{"text":"\\\"","lane":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		for _, typ := range []reflect.Type{reflect.TypeOf(&request{}), nil, reflect.TypeOf(new(any))} {
			got := CheckKeys(data, typ)
			want := checkKeysDecoder(data, typ)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%q into %v: scanner %v, decoder %v", data, typ, got, want)
			}
		}
	})
}

// BenchmarkCheckKeys checks one bulk item with a 1 KB text.
func BenchmarkCheckKeys(b *testing.B) {
	item := []byte(`{"from":"app@app.test","to":["rcpt@sink.test"],"subject":"bulk","text":"` + strings.Repeat("x", 1024) + `","lane":"low"}`)
	typ := reflect.TypeOf(&request{})
	b.Run("scanner", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := CheckKeys(item, typ); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decoder", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := checkKeysDecoder(item, typ); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func checkKeysDecoder(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walk(dec, t, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("malformed JSON: more than one value")
	}
	return nil
}

func walk(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return SyntaxError(err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	t = deref(t)
	if opaque(t) {
		t = nil
	}
	switch d {
	case '{':
		keys := NewKeySet(t, path)
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return SyntaxError(err)
			}
			key, _ := tok.(string)
			if err := keys.Add(key); err != nil {
				return err
			}
			if err := walk(dec, fieldType(t, key), join(path, key)); err != nil {
				return err
			}
		}
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		} else if t != nil && t.Kind() == reflect.Interface {
			elem = t
		}
		for i := 0; dec.More(); i++ {
			if err := walk(dec, elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return SyntaxError(err)
	}
	return nil
}
