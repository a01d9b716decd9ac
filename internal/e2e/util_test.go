package e2e

import (
	"encoding/base64"
	"os"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// requireTool skips a test that needs an outside program, or fails it
// when POSTHORN_REQUIRE_TOOLS=1 (CI installs them).
func requireTool(t *testing.T, name string) {
	t.Helper()
	if os.Getenv("POSTHORN_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is not installed (POSTHORN_REQUIRE_TOOLS=1)", name)
	}
	t.Skipf("%s is not installed", name)
}
