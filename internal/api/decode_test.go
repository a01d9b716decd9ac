package api

import (
	"reflect"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/strictjson"
)

// general is SendRequest without the fast path: strictjson.Decode into
// it takes the general (encoding/json) way.
type general SendRequest

var fastSeeds = []string{
	`{"from":"app@app.test","to":["rcpt@sink.test"],"subject":"bulk","text":"xx\nyy\n","lane":"low"}`,
	`{"from":{"name":"A \"B\"","email":" A@Example.COM "},"to":"Name <b@x.test>","cc":[{"email":"c@x.test"}],"bcc":[],"reply_to":{"email":"r@x.test","name":"R"}}`,
	`{"subject":"h\u00e9 \u20ac \ud83d\ude00","html":"<p>caf\u00e9 é 😀</p>","text":"tab\tq\"\\/\b\f\r"}`,
	`{"headers":{"X-A":"1","x-a":"2"},"metadata":{},"tags":["a","b"],"idempotency_key":"k","send_at":"2026-01-02T03:04:05Z"}`,
	`{"attachments":[{"filename":"a.txt","content_type":"text/plain","content":"aGk=","content_id":"c1"},{"filename":"b","content":"!!"},{}]}`,
	` { "to" : [ "a@x.test" , "b@x.test" ] , "text" : "" } `,
	`{"text":"a","text":"b"}`, `{"text":"a","Text":"b"}`, `{"To":["a@x.test"]}`, `{"headers":{"a":"1","a":"2"}}`,
	`{"from":{"email":"a@x","email":"b@x"}}`, `{"from":{"email":"a@x","EMAIL":"b@x"}}`, `{"to":[null]}`, `{"to":null}`,
	`{"attachments":[{"content":"aGk=","content":"aGk="}]}`, `{"send_at":"yesterday"}`, `{"send_at":null}`, `{"tags":[1]}`,
	`{"text":"a"} {}`, `{"text":"a",}`, `{"tags":["a",]}`, `{"colour":"red"}`, `null`, `{}`, `{"text":"\ud800"}`, "{\"text\":\"\xff\"}",
}

// FuzzDecodeFast: where the fast path decodes a request, the general path
// accepts it with the same result.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast SendRequest
		if !fast.DecodeFast(data) {
			if !reflect.DeepEqual(fast, SendRequest{}) {
				t.Fatalf("%q: the fast path failed but changed the request: %+v", data, fast)
			}
			return
		}
		var slow general
		if err := strictjson.Decode(data, &slow); err != nil {
			t.Fatalf("%q: the fast path accepts it, the general path refuses it: %v", data, err)
		}
		if !reflect.DeepEqual(fast, SendRequest(slow)) {
			t.Fatalf("%q:\nfast    %+v\ngeneral %+v", data, fast, SendRequest(slow))
		}
	})
}

// TestDecodeFastTakesUsualRequests: the usual shapes do not fall back (the
// fuzz test alone would pass with a fast path that never succeeds).
func TestDecodeFastTakesUsualRequests(t *testing.T) {
	for _, s := range fastSeeds[:6] {
		var r SendRequest
		if !r.DecodeFast([]byte(s)) {
			t.Errorf("fast path refuses %s", s)
		}
	}
}

// BenchmarkDecodeSendRequest decodes one bulk item with a 1 KB text.
func BenchmarkDecodeSendRequest(b *testing.B) {
	item := []byte(`{"from":"app@app.test","to":["rcpt@sink.test"],"subject":"bulk","text":"` +
		strings.Repeat(strings.Repeat("x", 75)+`\n`, 13) + `","lane":"low"}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var r SendRequest
			if err := strictjson.Decode(item, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var r general
			if err := strictjson.Decode(item, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
