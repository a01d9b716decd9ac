package api

import (
	"time"

	"github.com/posthorn/posthorn/internal/compose"
	"github.com/posthorn/posthorn/internal/strictjson"
)

// DecodeFast is the one-pass decoder of a send request (the bulk API
// decodes thousands a request): see strictjson.FastDecoder. It reads
// the exact field names, string values, and send_at as time.Time reads
// it; on anything else it returns false with req unchanged.
func (req *SendRequest) DecodeFast(data []byte) bool {
	var r SendRequest
	l := strictjson.NewLexer(data)
	var seen uint32
	l.Open('{')
	for n := 0; l.More('}', n); n++ {
		key := l.Key()
		f := r.DecodeField(l, key)
		if f < 0 {
			f = r.decodeField(l, key)
		}
		if f < 0 || seen&(1<<f) != 0 {
			l.Fail()
			break
		}
		seen |= 1 << f
	}
	if !l.End() {
		return false
	}
	*req = r
	return true
}

// decodeField reads one of SendRequest's own fields and returns its
// number (after the Message's), or -1.
func (r *SendRequest) decodeField(l *strictjson.Lexer, key []byte) int {
	const base = compose.MessageFields
	switch string(key) {
	case "lane":
		r.Lane = l.String()
		return base
	case "send_at":
		var t time.Time
		if err := t.UnmarshalJSON(l.RawString()); err != nil {
			l.Fail()
		}
		r.SendAt = &t
		return base + 1
	case "tags":
		tags := []string{}
		l.Open('[')
		for n := 0; l.More(']', n); n++ {
			tags = append(tags, l.String())
		}
		r.Tags = tags
		return base + 2
	case "metadata":
		r.Metadata = compose.DecodeStringMap(l)
		return base + 3
	case "idempotency_key":
		r.IdempotencyKey = l.String()
		return base + 4
	}
	return -1
}
