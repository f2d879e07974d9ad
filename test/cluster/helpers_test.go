package cluster_test

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// The client helpers both suites use (Dial, Subscribe, Expect, Flush and
// the Require checks) are in test/harness; the webhook receiver is
// test/hookrecv.

// wait bounds every wait for something that must happen: harness.Wait.
const wait = harness.Wait

// lease is the short lease of the tests that wait for one to expire.
const lease = 1500 * time.Millisecond

// pollEvery paces the loops that poll the nodes against a deadline.
const pollEvery = 20 * time.Millisecond

// node is one Fizz node as a client sees it, in-process or a process.
type node struct {
	name    string
	wsURL   string
	httpURL string
	pusher  *pusherhttp.Client
	http    *http.Client
	// proc is set for a node that runs as its own process.
	proc *harness.Process
	// inproc is set for an in-process node.
	inproc *harness.Node
}

func (n *node) String() string { return n.name }

// SocketURL and Trigger make a node a harness.Endpoint.
func (n *node) SocketURL() string { return n.wsURL }

// Trigger publishes an event through the node's HTTP API.
func (n *node) Trigger(channel, event string, data any) error {
	return n.pusher.Trigger(channel, event, data)
}

// fromNode wraps an in-process node.
func fromNode(name string, h *harness.Node) *node {
	return &node{name: name, wsURL: h.WSURL(harness.AppKey), httpURL: h.HTTPURL, pusher: h.Pusher, http: h.HTTP, inproc: h}
}

// cluster is one private Redis and the scaling settings its nodes share.
// With FIZZ_TEST_REDIS=cluster the Redis is a three-master Redis Cluster
// (shards is set) and redis stands for no server: a test that restarts,
// pauses or reads the one redis-server skips there.
type cluster struct {
	redis   *harness.Redis
	shards  *harness.RedisCluster
	channel string
}

var seq atomic.Int64

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// newCluster starts a private Redis for t and picks a scaling channel
// unique to t.
func newCluster(t testing.TB) *cluster {
	t.Helper()
	name := unsafeChars.ReplaceAllString(t.Name(), "-")
	c := &cluster{channel: fmt.Sprintf("fizz-test-%s-%d", name, seq.Add(1))}
	switch topology := os.Getenv("FIZZ_TEST_REDIS"); topology {
	case "", "single":
		c.redis = harness.StartRedis(t)
		t.Logf("using %s", c.redis)
	case "cluster":
		c.shards = harness.StartRedisCluster(t)
		c.redis = harness.NoRedisServer(t, "FIZZ_TEST_REDIS=cluster: this test acts on the one redis-server of the single shape")
		t.Logf("using a Redis Cluster at %s", strings.Join(c.shards.Addrs, ","))
	default:
		t.Fatalf("FIZZ_TEST_REDIS=%q: want single or cluster", topology)
	}
	return c
}

// start starts an in-process node of the cluster; mutate may change its
// configuration further (nil: none). It does not wait for the Redis link.
func (c *cluster) start(t testing.TB, name string, mutate func(*app.Config)) *node {
	t.Helper()
	h := harness.Start(t, func(cfg *app.Config) {
		cfg.Scaling.Enabled = true
		if c.shards != nil {
			cfg.Scaling.RedisCluster = c.shards.Addrs
		} else {
			cfg.Scaling.RedisURL = c.redis.URL
		}
		cfg.Scaling.Channel = c.channel
		cfg.Scaling.Lease = lease
		cfg.Apps[0].ClientEventsPerSecond = 0 // the fan-out sends many
		if mutate != nil {
			mutate(cfg)
		}
	})
	return fromNode(name, h)
}

// startProcess starts a node of the cluster as its own process, so that
// the test can kill it with SIGKILL; env adds to its environment.
func (c *cluster) startProcess(t testing.TB, name string, env map[string]string) *node {
	t.Helper()
	vars := map[string]string{
		"FIZZ_SCALING_ENABLED": "true",
		"REDIS_URL":            c.redis.URL,
		"FIZZ_SCALING_CHANNEL": c.channel,
		"FIZZ_SCALING_LEASE":   lease.String(),
		"FIZZ_LOG_LEVEL":       "debug",
	}
	if c.shards != nil {
		delete(vars, "REDIS_URL")
		vars["FIZZ_REDIS_CLUSTER"] = strings.Join(c.shards.Addrs, ",")
	}
	for k, v := range env {
		vars[k] = v
	}
	p := harness.StartProcess(t, vars)
	t.Cleanup(p.HTTP.CloseIdleConnections)
	return &node{name: name, wsURL: p.WSURL(), httpURL: p.HTTPURL, pusher: p.Pusher, http: p.HTTP, proc: p}
}

// startSingle starts an in-process node with scaling off.
func startSingle(t testing.TB, name string, mutate func(*app.Config)) *node {
	t.Helper()
	h := harness.Start(t, func(cfg *app.Config) {
		cfg.Apps[0].ClientEventsPerSecond = 0
		if mutate != nil {
			mutate(cfg)
		}
	})
	return fromNode(name, h)
}

// startNodes starts count in-process nodes named A, B, C…: a cluster
// over one Redis when scaling, else separate nodes. It waits until every
// node has its Redis link.
func startNodes(t testing.TB, scaling bool, count int, mutate func(*app.Config)) []*node {
	t.Helper()
	nodes := make([]*node, count)
	var c *cluster
	if scaling {
		c = newCluster(t)
	}
	for i := range nodes {
		name := string(rune('A' + i))
		if scaling {
			nodes[i] = c.start(t, name, mutate)
		} else {
			nodes[i] = startSingle(t, name, mutate)
		}
	}
	if scaling {
		waitUp(t, nodes...)
	}
	return nodes
}

// health returns the status and body of GET /up.
func health(t testing.TB, n *node) (int, string) {
	t.Helper()
	resp, err := n.http.Get(n.httpURL + "/up")
	require.NoError(t, err, "GET /up on %s", n)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// waitHealth polls GET /up on each node until it answers status.
func waitHealth(t testing.TB, status int, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, wait, fmt.Sprintf("GET /up on %s answers %d", n, status), func() (bool, string) {
			got, body := health(t, n)
			return got == status, fmt.Sprintf("%d %s", got, body)
		})
	}
}

// waitUp waits until every node has its Redis link (GET /up is 200), so
// that it receives every event published from then on.
func waitUp(t testing.TB, nodes ...*node) { t.Helper(); waitHealth(t, http.StatusOK, nodes...) }

// eventually polls cond every pollEvery until it holds, failing after
// within with what cond last reported.
func eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	last := ""
	for attempt := 0; ; attempt++ {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		last = state
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out: "+what, "after %s and %d attempts; last: %s", within, attempt+1, last)
		}
		<-ticker.C
	}
}

// userInfo is the user_info of user id in this suite's presence channels.
func userInfo(id string) map[string]string { return map[string]string{"name": "user " + id} }

// trySubscribePresence joins a presence channel as user id and returns
// the answer, whatever it is; it may run on any goroutine.
func trySubscribePresence(c *pusherclient.Client, channel, id string) (pusherclient.Frame, error) {
	return harness.SubscribePresence(c, channel, id, userInfo(id))
}

// join subscribes c to a presence channel as user id, requires success
// and returns the member ids it lists. It then pings c: the server handles
// a socket's frames in order, so once the pong is back the member_added
// that the join caused has been published.
func join(t testing.TB, c *pusherclient.Client, channel, id string) []string {
	t.Helper()
	f, err := trySubscribePresence(c, channel, id)
	require.NoError(t, err)
	ids := members(t, f)
	require.NoError(t, c.Ping())
	return ids
}

// members requires subscription_succeeded and returns its ids, sorted,
// after checking that ids, hash and count agree.
func members(t testing.TB, f pusherclient.Frame) []string {
	t.Helper()
	require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "%s", f)
	p, err := f.PresenceList()
	require.NoError(t, err)
	require.Len(t, p.Presence.Hash, len(p.Presence.IDs), "hash and ids of %s", f)
	require.Equal(t, len(p.Presence.IDs), p.Presence.Count, "count of %s", f)
	ids := append([]string{}, p.Presence.IDs...)
	sort.Strings(ids)
	return ids
}

// memberID returns the user id of member_added or member_removed.
func memberID(t testing.TB, f pusherclient.Frame) string {
	t.Helper()
	var m struct {
		UserID string `json:"user_id"`
	}
	require.NoError(t, f.DecodeData(&m), "user_id must be a string: %s", f)
	return m.UserID
}

// take removes every pending frame with event on channel from c's inbox
// and returns them in arrival order.
func take(c *pusherclient.Client, event, channel string) []pusherclient.Frame {
	var out []pusherclient.Frame
	for range len(c.Pending()) {
		f, err := c.ExpectFunc(pusherclient.Match(event, channel), 0)
		if err != nil {
			break
		}
		out = append(out, f)
	}
	return out
}

// sorted returns the keys of a set, sorted.
func sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k, in := range set {
		if in {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// api sends a signed request to the node's HTTP API and returns the
// status and body. query may be nil; body may be nil for a GET.
func api(t testing.TB, n *node, method, path string, query map[string]string, body []byte) (int, []byte) {
	t.Helper()
	path = "/apps/" + harness.AppID + path
	params := map[string]string{
		"auth_key":       harness.AppKey,
		"auth_timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"auth_version":   "1.0",
	}
	for k, v := range query {
		params[k] = v
	}
	if len(body) > 0 {
		sum := md5.Sum(body)
		params["body_md5"] = hex.EncodeToString(sum[:])
	}
	params["auth_signature"] = pusher.SignRequest(harness.AppSecret, method, path, params)
	q := url.Values{}
	for k, v := range params {
		q.Set(k, v)
	}
	req, err := http.NewRequest(method, n.httpURL+path+"?"+q.Encode(), bytes.NewReader(body))
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.http.Do(req)
	require.NoError(t, err, "%s %s on %s", method, path, n)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

// apiJSON is api for a request that must answer 200 with a JSON object.
func apiJSON(t testing.TB, n *node, method, path string, query map[string]string, body []byte, v any) {
	t.Helper()
	status, raw := api(t, n, method, path, query, body)
	require.Equal(t, http.StatusOK, status, "%s %s on %s: %s", method, path, n, raw)
	require.NoError(t, json.Unmarshal(raw, v), "%s %s on %s: %s", method, path, n, raw)
}

// connections returns GET /apps/{id}/connections through n.
func connections(t testing.TB, n *node) int {
	t.Helper()
	var out struct {
		Connections *int `json:"connections"`
	}
	apiJSON(t, n, http.MethodGet, "/connections", nil, nil, &out)
	require.NotNil(t, out.Connections, "connections is in the answer")
	return *out.Connections
}

// waitConnections polls GET connections through n until it is want. A
// socket is uncounted only after its presence leaves were published, so
// this is also a barrier for the member_removed its close caused.
func waitConnections(t testing.TB, n *node, want int) {
	t.Helper()
	eventually(t, wait, fmt.Sprintf("%d connections through %s", want, n), func() (bool, string) {
		got := connections(t, n)
		return got == want, strconv.Itoa(got)
	})
}

// channelUsers returns the sorted user ids of GET channels/{c}/users
// through n, with pusher-http-go.
func channelUsers(t testing.TB, n *node, channel string) []string {
	t.Helper()
	users, err := n.pusher.GetChannelUsers(channel)
	require.NoError(t, err, "users of %s through %s", channel, n)
	ids := []string{}
	for _, u := range users.List {
		ids = append(ids, u.ID)
	}
	sort.Strings(ids)
	return ids
}

// userCount returns the user_count of GET channels/{c} through n.
func userCount(t testing.TB, n *node, channel string) int {
	t.Helper()
	info := "user_count"
	ch, err := n.pusher.Channel(channel, pusherhttp.ChannelParams{Info: &info})
	require.NoError(t, err, "channel %s through %s", channel, n)
	return ch.UserCount
}

// sumMetric sums a metric (counters and gauges) over in-process nodes,
// the series whose labels include labels (name, value pairs).
func sumMetric(t testing.TB, nodes []*node, name string, labels ...string) float64 {
	t.Helper()
	total := 0.0
	for _, n := range nodes {
		require.NotNil(t, n.inproc, "%s runs in this process", n)
		total += n.inproc.Metric(t, name, labels...)
	}
	return total
}

// statusOf returns the HTTP status in a pusher-http-go error, or 200.
func statusOf(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var code int
	if _, scanErr := fmt.Sscanf(err.Error(), "Status Code: %d", &code); scanErr != nil {
		return 0
	}
	return code
}

// containsFold reports whether s contains sub, ignoring case.
func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
