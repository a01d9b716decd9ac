package benchkit

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// StartNodes builds posthorn once and starts n nodes on the shared store
// (a PostgreSQL URL) with extra serve flags, each with its own data
// directory under work; the store is initialised once (init --store).
func StartNodes(work, store string, n int, extra ...string) ([]*Posthorn, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(work, "posthorn")
	build := exec.Command("go", "build", "-o", bin, "./cmd/posthorn")
	build.Dir, build.Stderr = root, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	out, err := exec.Command(bin, "init", "--store", store, "--json").Output()
	if err != nil {
		return nil, fmt.Errorf("init --store: %w", err)
	}
	var creds struct {
		APIKey string `json:"api_key"`
		User   string `json:"smtp_username"`
		Pass   string `json:"smtp_password"`
	}
	if err := json.Unmarshal(out, &creds); err != nil {
		return nil, err
	}
	var nodes []*Posthorn
	for i := range n {
		p := &Posthorn{Bin: bin, Dir: filepath.Join(work, fmt.Sprintf("node%d", i)), APIKey: creds.APIKey, User: creds.User, Pass: creds.Pass}
		p.client = (&Posthorn{}).httpClient()
		sp, err := freePort()
		if err != nil {
			return nil, err
		}
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		p.SMTP, p.HTTP = fmt.Sprintf("127.0.0.1:%d", sp), fmt.Sprintf("127.0.0.1:%d", hp)
		p.args = append([]string{"serve", "--store", store, "--data-dir", p.Dir, "--smtp-listen", p.SMTP, "--http-listen", p.HTTP,
			"--hostname", "bench.posthorn.test", "--log-level", "warn", "--allow-unverified-senders"}, extra...)
		p.log = filepath.Join(work, fmt.Sprintf("node%d.log", i))
		if err := p.serve(30 * time.Second); err != nil {
			for _, q := range nodes {
				q.Stop()
			}
			return nil, err
		}
		nodes = append(nodes, p)
	}
	return nodes, nil
}
