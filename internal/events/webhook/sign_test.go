package webhook

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestSignStandardVector signs the reference library's test vector
// (testdata/standard-webhooks/test_webhooks.py, test_sign_function) and
// gets its expected signature.
func TestSignStandardVector(t *testing.T) {
	src, err := os.ReadFile("testdata/standard-webhooks/test_webhooks.py")
	if err != nil {
		t.Fatal(err)
	}
	fn := regexp.MustCompile(`(?s)def test_sign_function\(\).*?assert signature == expected`).Find(src)
	if fn == nil {
		t.Fatal("test_sign_function not found")
	}
	get := func(re string) string {
		m := regexp.MustCompile(re).FindSubmatch(fn)
		if m == nil {
			t.Fatalf("%s not found in test_sign_function", re)
		}
		return string(m[1])
	}
	key, id, payload, want := get(`key = "([^"]+)"`), get(`msg_id = "([^"]+)"`), get(`payload = '([^']+)'`), get(`expected = "([^"]+)"`)
	ts, err := strconv.ParseInt(get(`fromtimestamp\((\d+)`), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Sign(key, id, ts, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	// The same secret without its prefix signs the same.
	if got2, _ := Sign(key[len(SecretPrefix):], id, ts, []byte(payload)); got2 != want {
		t.Fatalf("without prefix: %s", got2)
	}
	// A changed body does not.
	if got3, _ := Sign(key, id, ts, []byte(payload+" ")); got3 == want {
		t.Fatal("signature ignores the body")
	}
}

// TestSecretPadding follows test_signature_verification_with_unpadded_secret:
// secrets that need 0, 1 or 2 padding characters decode the same with and
// without them.
func TestSecretPadding(t *testing.T) {
	for _, s := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr"} {
		padded := s + map[int]string{0: "", 2: "==", 3: "="}[len(s)%4]
		a, err := Sign(s, "msg_1", 1, []byte("x"))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		b, err := Sign(SecretPrefix+padded, "msg_1", 1, []byte("x"))
		if err != nil || a != b {
			t.Fatalf("%s: %s vs %s (%v)", s, a, b, err)
		}
	}
	if _, err := Sign(SecretPrefix, "msg_1", 1, nil); err == nil {
		t.Fatal("empty secret accepted")
	}
	sec, err := NewSecret()
	if err != nil || len(sec) < 40 {
		t.Fatalf("NewSecret = %q, %v", sec, err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"120": 2 * time.Minute, "": 0, "-5": 0, "99999": time.Hour, "soon": 0,
		"Tue, 01 Dec 2026 12:00:30 GMT": 30 * time.Second} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("%q: %s, want %s", v, got, want)
		}
	}
}
