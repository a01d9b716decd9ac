package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/api"
	"github.com/posthorn/posthorn/internal/queue/ops"
	"github.com/posthorn/posthorn/internal/server"
	"github.com/posthorn/posthorn/internal/store"
	"github.com/posthorn/posthorn/internal/store/postgres"
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
	var st server.Status
	nodes[2].CLI(&st, "status")
	if st.SchemaVersion != postgres.SchemaVersion() || st.StoreBytes == 0 || st.Queue["delivered"] != 15 {
		t.Fatalf("status on a cluster node: schema %d, %d bytes, queue %v; want the shared store's", st.SchemaVersion, st.StoreBytes, st.Queue)
	}
	_, stderr, code := nodes[0].Run("", nil, "backup", filepath.Join(t.TempDir(), "b.tar.gz"))
	if code == 0 || !strings.Contains(stderr, "pg_dump") {
		t.Fatalf("backup of a cluster node: exit %d, %s; want it to point to pg_dump", code, stderr)
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

// clusterLoad injects messages 0..total-1 (one recipient each,
// r<i>@domain) across the nodes that are up, half over SMTP sessions
// and half through the HTTP bulk API, and records which were
// acknowledged. A message whose submission failed (its node was killed)
// is submitted again on another node.
type clusterLoad struct {
	nodes  []*Instance
	domain string
	mu     sync.Mutex
	acked  map[int]bool
	down   map[int]bool
	next   int // round robin
	// stop ends run early (a test that only needs a backlog).
	stop atomic.Bool
}

func (l *clusterLoad) pick() *Instance {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		l.next++
		if i := l.next % len(l.nodes); !l.down[i] {
			return l.nodes[i]
		}
	}
}

func (l *clusterLoad) setDown(i int, down bool) {
	l.mu.Lock()
	l.down[i] = down
	l.mu.Unlock()
}

func (l *clusterLoad) ack(ids ...int) {
	l.mu.Lock()
	for _, i := range ids {
		l.acked[i] = true
	}
	l.mu.Unlock()
}

func (l *clusterLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func (l *clusterLoad) rcpt(i int) string { return fmt.Sprintf("r%d@%s", i, l.domain) }

// smtpChunk submits ids in one SMTP session; it returns those not
// acknowledged.
func (l *clusterLoad) smtpChunk(in *Instance, ids []int) []int {
	c, err := Dial(in.SMTP)
	if err != nil {
		return ids
	}
	defer c.Close()
	if _, err := c.Cmd(250, "EHLO client.test"); err != nil {
		return ids
	}
	if _, err := c.Cmd(235, "AUTH PLAIN "+plain(in.Creds.SMTPUsername, in.Creds.SMTPPassword)); err != nil {
		return ids
	}
	for k, i := range ids {
		if _, err := c.Transaction("app@app.test", []string{l.rcpt(i)}, fmt.Sprintf("Subject: m%d\r\n\r\nhello\r\n", i)); err != nil {
			return ids[k:]
		}
		l.ack(i)
	}
	return nil
}

// httpChunk submits ids in one bulk request.
func (l *clusterLoad) httpChunk(in *Instance, ids []int) []int {
	items := make([]map[string]any, len(ids))
	for k, i := range ids {
		items[k] = map[string]any{"from": "app@app.test", "to": []string{l.rcpt(i)}, "subject": fmt.Sprintf("m%d", i), "text": "hello"}
	}
	res, err := in.tryBulk(items)
	if err != nil {
		return ids
	}
	var left []int
	for k, it := range res.Items {
		if it.ID != "" {
			l.ack(ids[k])
		} else {
			left = append(left, ids[k])
		}
	}
	return left
}

// run submits ids[from:to] in chunks from several goroutines.
func (l *clusterLoad) run(t *testing.T, from, to int) {
	const chunk, workers = 250, 6
	work := make(chan []int)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ids := range work {
				for tries := 0; len(ids) > 0 && !l.stop.Load(); tries++ {
					if tries > 50 {
						t.Errorf("%d messages not accepted by any node", len(ids))
						return
					}
					if w%2 == 0 {
						ids = l.smtpChunk(l.pick(), ids)
					} else {
						ids = l.httpChunk(l.pick(), ids)
					}
				}
			}
		}()
	}
	for i := from; i < to; i += chunk {
		ids := make([]int, 0, chunk)
		for j := i; j < min(to, i+chunk); j++ {
			ids = append(ids, j)
		}
		work <- ids
	}
	close(work)
	wg.Wait()
}

// TestClusterKillAndLimits: three nodes on one PostgreSQL database share
// the queue. 30,000 messages to one destination
// limited to 5 connections (3,000 by default, see below) are injected
// across the nodes over SMTP and HTTP; a third of the way in, one node is SIGKILLed; once the others
// have taken over its deliveries it is restarted. Every acknowledged
// message is delivered, the duplicates (attempts the killed node had
// made but not recorded) are at most two per connection it could hold,
// and the destination never sees more than 5 connections at once from
// the whole cluster.
func TestClusterKillAndLimits(t *testing.T) {
	// 3,000 by default: the 30,000 take about ten minutes on a
	// busy 2-core machine, more than the suite's budget in CI. Run them
	// with POSTHORN_CLUSTER_MESSAGES=30000 (and -timeout 40m).
	total := 3000
	if n, err := strconv.Atoi(os.Getenv("POSTHORN_CLUSTER_MESSAGES")); err == nil && n > 0 {
		total = n
	}
	w := &world{dns: testkit.StartDNS(t), mx: map[string]*testkit.MXServer{}}
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{DiscardData: true, Stall: testkit.Stalls{EndOfData: time.Millisecond}})
	w.domain("c.test", "127.0.0.2")
	const limit = 5
	nodes := StartCluster(t, 3, Options{DNS: w.dns.Addr(), DeliveryPort: mx.Port(), RetryMin: time.Second, RetryMax: 2 * time.Second,
		Config: fmt.Sprintf("log_level = \"info\"\n[delivery]\nmax_connections_per_destination = %d\n", limit), LogLevelFromConfig: true})
	l := &clusterLoad{nodes: nodes, domain: "c.test", acked: map[int]bool{}, down: map[int]bool{}}
	start := time.Now()
	l.run(t, 0, total/3)
	// Kill node 2 while it delivers.
	victim := nodes[2]
	l.setDown(2, true)
	victim.Kill()
	t.Logf("killed node 2 after %d acknowledged (%s), %d delivered", l.ackedCount(), time.Since(start).Round(time.Millisecond), mx.Accepted())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(t, total/3, 2*total/3)
	}()
	// The others take its deliveries over once its heartbeat is old.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var rep server.NodesReport
		nodes[0].CLI(&rep, "nodes")
		var v store.Node
		for _, n := range rep.Nodes {
			if n.PID != 0 && n.Name != rep.Self && !n.Alive {
				v = n
			}
		}
		if v.Name != "" && v.Leases == 0 {
			t.Logf("node %s taken over after %s", v.Name, time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed node's deliveries were not taken over: %+v", rep.Nodes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	<-done
	victim.Restart()
	l.setDown(2, false)
	l.run(t, 2*total/3, total)
	if n := l.ackedCount(); n != total {
		t.Fatalf("%d of %d acknowledged", n, total)
	}
	accepted := time.Since(start)
	// Every acknowledged message arrives.
	deadline = time.Now().Add(2*time.Minute + time.Duration(total)*40*time.Millisecond)
	var got map[string]int
	for {
		got = map[string]int{}
		for _, m := range mx.Messages() {
			for _, r := range m.To {
				got[r]++
			}
		}
		missing := 0
		for i := range total {
			if got[l.rcpt(i)] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			var rep server.NodesReport
			nodes[0].CLI(&rep, "nodes")
			var st server.Status
			nodes[0].CLI(&st, "status")
			t.Fatalf("%d of %d acknowledged messages not delivered; nodes %+v; queue %v", missing, total, rep.Nodes, st.Queue)
		}
		time.Sleep(500 * time.Millisecond)
	}
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	t.Logf("%d messages: all accepted after %s, all delivered after %s; %d duplicates; at most %d connections at once",
		total, accepted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), dups, mx.MaxActiveConnections())
	if os.Getenv("POSTHORN_CLUSTER_DEBUG") != "" {
		for i, in := range nodes {
			os.WriteFile(fmt.Sprintf("/tmp/pgc-node%d.log", i), []byte(in.Log()), 0o600)
		}
	}
	if dups > 2*limit {
		t.Errorf("%d duplicates; the killed node could have had at most %d attempts unrecorded (2 per connection)", dups, 2*limit)
	}
	if n := mx.MaxActiveConnections(); n > limit {
		t.Errorf("the destination saw %d connections at once; the cluster-wide limit is %d", n, limit)
	}
}

// stormDest returns node in's state for the destination of domain
// (zero when it holds none).
func stormDest(t *testing.T, in *Instance, domain string) ops.DestinationRow {
	var res struct {
		Items []ops.DestinationRow `json:"items"`
	}
	in.CLI(&res, "destinations")
	for _, d := range res.Items {
		if slices.Contains(d.Domains, domain) || strings.Contains(d.Key, domain) {
			return d
		}
	}
	return ops.DestinationRow{}
}

// TestClusterThrottleShared: a 421 seen by one node slows all three.
// Nodes 1 and 2 are sending a backlog to a destination when node 0 gets
// "421 4.7.28" there (for one recipient only they never send to): within
// seconds nodes 1 and 2 are paused and throttled too, with node 0's
// reply as the reason, and the destination gets nothing more from the
// cluster during the pause.
func TestClusterThrottleShared(t *testing.T) {
	w := &world{dns: testkit.StartDNS(t), mx: map[string]*testkit.MXServer{}}
	storm := testkit.Reply{Code: 421, Text: "4.7.28 rate limited, slow down"}
	mx := testkit.StartMX(t, "127.0.0.2", 0, testkit.Script{DiscardData: true, Stall: testkit.Stalls{EndOfData: 20 * time.Millisecond},
		RcptReplies: map[string]testkit.Reply{"trigger@storm.test": storm}})
	w.domain("storm.test", "127.0.0.2")
	nodes := StartCluster(t, 3, Options{DNS: w.dns.Addr(), DeliveryPort: mx.Port(),
		Config: "[delivery]\nmax_connections_per_destination = 4\ncooldown = \"30s\"\n"})
	l := &clusterLoad{nodes: nodes[1:], domain: "storm.test", acked: map[int]bool{}, down: map[int]bool{}}
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		l.run(t, 0, 4000) // a backlog on nodes 1 and 2
	}()
	defer func() {
		l.stop.Store(true)
		<-loaded
	}()
	// Wait until nodes 1 and 2 both deliver there.
	deadline := time.Now().Add(60 * time.Second)
	for stormDest(t, nodes[1], "storm.test").SentLastMin == 0 || stormDest(t, nodes[2], "storm.test").SentLastMin == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nodes 1 and 2 are not both delivering to storm.test")
		}
		time.Sleep(100 * time.Millisecond)
	}
	nodes[0].Send("app@app.test", []string{"trigger@storm.test"}, "Subject: trigger\r\n\r\nx\r\n")
	for i, in := range nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			d := stormDest(t, in, "storm.test")
			if d.Paused && d.Throttle.Throttled && strings.Contains(d.Throttle.Reason, "4.7.28") {
				t.Logf("node %d: paused until %s, %d connections allowed (%s)", i, d.Throttle.PausedUntil.Format(time.StampMilli), d.Throttle.Conns, d.Throttle.Reason)
				if i > 0 && !strings.Contains(d.Throttle.Reason, "seen by node") {
					t.Errorf("node %d paused by its own 421? %q", i, d.Throttle.Reason)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d not slowed down after node 0's 421: %+v", i, d)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// All paused: what was in flight finishes, then nothing arrives.
	time.Sleep(time.Second)
	before := mx.Accepted()
	time.Sleep(3 * time.Second)
	if got := mx.Accepted() - before; got > 0 {
		t.Errorf("the destination accepted %d messages from a cluster that should be paused", got)
	}
}
