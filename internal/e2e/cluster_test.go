package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/server"
	"github.com/posthorn/posthorn/internal/testkit"
	"github.com/posthorn/posthorn/internal/testkit/pgtest"
)

// runThen runs the tests, then cleans up (for pgtest.Main).
type runThen struct {
	m    *testing.M
	then func()
}

func (r runThen) Run() int {
	code := r.m.Run()
	r.then()
	return code
}

// StartCluster starts n posthorn nodes sharing one fresh PostgreSQL
// database (o.Store is set to it), each with its own data directory and
// ports; the database is initialised once, by posthorn init --store, and
// every node gets its credentials.
func StartCluster(t testing.TB, n int, o Options) []*Instance {
	t.Helper()
	o.Store = pgtest.NewDatabase(t)
	out, err := exec.Command(binary, "init", "--store", o.Store, "--json").Output()
	if err != nil {
		t.Fatalf("posthorn init --store: %v", err)
	}
	var nodes []*Instance
	for i := range n {
		dir := t.TempDir()
		in := &Instance{t: t, Dir: filepath.Join(dir, "data"), opts: o, logFile: filepath.Join(dir, "posthorn.log")}
		if err := json.Unmarshal(out, &in.Creds); err != nil {
			t.Fatalf("init output %q: %v", out, err)
		}
		in.run()
		if i == 0 {
			// The others start after the first has migrated (they would
			// wait on its lock anyway).
			in.WaitLog(20e9, "scheduler started")
		}
		nodes = append(nodes, in)
	}
	return nodes
}

// tryBulk sends items through the HTTP bulk API of in; an error (the node
// is down) means none was acknowledged.
func (in *Instance) tryBulk(items []map[string]any) (*api.BulkResponse, error) {
	data, err := json.Marshal(map[string]any{"messages": items})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest("POST", "http://"+in.HTTP+"/v1/messages/bulk", bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+in.Creds.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("bulk: status %d", resp.StatusCode)
	}
	var res api.BulkResponse
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, err
	}
	return &res, nil
}

// TestClusterBasics: three nodes on one database each accept and deliver
// mail; posthorn nodes on any of them lists all three alive; a second
// init says the store is initialised; migrate runs alone.
func TestClusterBasics(t *testing.T) {
	w := &world{dns: testkit.StartDNS(t), mx: map[string]*testkit.MXServer{}}
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{})
	w.domain("c.test", "127.0.0.2")
	nodes := StartCluster(t, 3, Options{DNS: w.dns.Addr(), DeliveryPort: mx.Port()})
	for i, in := range nodes {
		for j := range 5 {
			in.Send("app@app.test", []string{fmt.Sprintf("n%d-%d@c.test", i, j)}, "Subject: hi\r\n\r\nhi\r\n")
		}
	}
	waitMessages(t, mx, 15)
	var rep server.NodesReport
	nodes[1].CLI(&rep, "nodes")
	if !rep.Cluster || len(rep.Nodes) != 3 {
		t.Fatalf("nodes: %+v", rep)
	}
	for _, n := range rep.Nodes {
		if !n.Alive {
			t.Fatalf("node %s not alive: %+v", n.Name, rep)
		}
	}
	out, err := exec.Command(binary, "init", "--store", nodes[0].opts.Store).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already initialised") {
		t.Fatalf("second init: %v %s", err, out)
	}
	out, err = exec.Command(binary, "migrate", "--store", nodes[0].opts.Store, "--json").Output()
	if err != nil || !strings.Contains(string(out), `"schema_version"`) {
		t.Fatalf("migrate: %v %s", err, out)
	}
}
