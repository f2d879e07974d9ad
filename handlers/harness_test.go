package handlers_test

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp refreshes its Date header on a process-wide goroutine
		// started once by the first server.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// A stopped fasthttp worker pool's cleaner sleeps out its 10 s idle
		// period before it sees the stop signal.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

// The apps every test node serves. other is a second app, so a request
// signed with another app's key can be told from a merely wrong key.
const (
	appID     = "app-id"
	appKey    = "app-key"
	appSecret = "app-secret"

	otherID     = "other-id"
	otherKey    = "other-key"
	otherSecret = "other-secret"

	maxRequestSize = 102400
)

// node is one Fizz node started in-process on 127.0.0.1:0.
type node struct {
	srv *server.Server
}

// newNode starts a node with the full module graph (app.Options), the way
// main does, under the path prefix.
func newNode(t testing.TB, prefix string) *node {
	t.Helper()
	cfg := app.Config{
		Server: server.Config{Host: "127.0.0.1", Port: 0, Path: prefix, MaxRequestSize: maxRequestSize},
		Apps: []apps.App{
			{ID: appID, Key: appKey, Secret: appSecret},
			{ID: otherID, Key: otherKey, Secret: otherSecret},
		},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := &node{}
	fxApp := fxtest.New(t, app.Options(cfg, log), fx.Populate(&n.srv))
	fxApp.RequireStart()
	t.Cleanup(fxApp.RequireStop)
	n.waitServing(t, prefix)
	return n
}

// waitServing waits until the listener answers. Until then, a Stop hangs
// until its deadline (see TestNodeStopsRightAfterStart), so every test
// waits here even when it only uses the in-process App().Test.
func (n *node) waitServing(t testing.TB, prefix string) {
	t.Helper()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: time.Second}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		resp, err := client.Get("http://" + n.srv.Addr() + prefix + "/up")
		if !assert.NoError(c, err) {
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body) // drained so the connection is reused
		_ = resp.Body.Close()                 // a read-only body; nothing to report
		assert.Equal(c, http.StatusOK, resp.StatusCode)
	}, 5*time.Second, 5*time.Millisecond)
}

// do sends req through Fiber's in-process Test and returns the status and
// the body.
func (n *node) do(t testing.TB, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := n.srv.App().Test(req, -1)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

// signingString is Pusher's REST API string to sign, written here from the
// Pusher docs rather than taken from modules/pusher, so that a bug in the
// server's own signing shows: METHOD\nPATH\nk=v&k=v with the keys lower
// case and sorted, auth_signature left out, values not URL-escaped.
func signingString(method, path string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if strings.ToLower(k) != "auth_signature" {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return strings.ToLower(keys[i]) < strings.ToLower(keys[j]) })
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = strings.ToLower(k) + "=" + params.Get(k)
	}
	return method + "\n" + path + "\n" + strings.Join(pairs, "&")
}

func hmacHex(secret, msg string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(msg))
	return hex.EncodeToString(mac.Sum(nil))
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// now returns the Unix second nearest to the current time, so a
// timestamp offset by ±599 s lands within half a second of 599 s skew on the
// server and never drifts across the 600 s boundary.
func now() int64 { return time.Now().Add(500 * time.Millisecond).Unix() }

// signOpts bends one part of a request's signature.
type signOpts struct {
	key, secret string // default appKey / appSecret
	offset      int64  // seconds added to auth_timestamp
	timestamp   string // replaces auth_timestamp when set
	version     string // replaces auth_version when set
	bodyMD5     string // replaces body_md5 when set
	drop        []string
	signMethod  string     // sign this method instead of the request's
	signPath    string     // sign this path instead of the request's
	unsigned    url.Values // added to the query after signing
	signature   string     // replaces auth_signature when set
}

// signedQuery returns the query string of a request as pusher-http-*
// sends it, bent by o.
func signedQuery(method, path string, body []byte, extra url.Values, o signOpts) string {
	key, secret := appKey, appSecret
	if o.key != "" {
		key = o.key
	}
	if o.secret != "" {
		secret = o.secret
	}
	params := url.Values{}
	for k, vs := range extra {
		params[k] = append([]string(nil), vs...)
	}
	params.Set("auth_key", key)
	params.Set("auth_timestamp", strconv.FormatInt(now()+o.offset, 10))
	params.Set("auth_version", "1.0")
	if o.timestamp != "" {
		params.Set("auth_timestamp", o.timestamp)
	}
	if o.version != "" {
		params.Set("auth_version", o.version)
	}
	if len(body) > 0 {
		params.Set("body_md5", md5Hex(body))
	}
	if o.bodyMD5 != "" {
		params.Set("body_md5", o.bodyMD5)
	}
	for _, k := range o.drop {
		params.Del(k)
	}
	signMethod, signPath := method, path
	if o.signMethod != "" {
		signMethod = o.signMethod
	}
	if o.signPath != "" {
		signPath = o.signPath
	}
	params.Set("auth_signature", hmacHex(secret, signingString(signMethod, signPath, params)))
	if o.signature != "" {
		params.Set("auth_signature", o.signature)
	}
	for _, k := range o.drop {
		params.Del(k) // drop auth_signature too when asked
	}
	for k, vs := range o.unsigned {
		params[k] = append(params[k], vs...)
	}
	return params.Encode()
}

// signedRequest builds a request signed for path (without any prefix) and
// sent to prefix+path.
func signedRequest(method, prefix, path string, body []byte, extra url.Values, o signOpts) *http.Request {
	var r io.Reader
	if body != nil {
		r = strings.NewReader(string(body))
	}
	req := httptest.NewRequest(method, "/", r)
	// The path goes on the wire exactly as written, percent escapes and
	// all: pusher-http-* sign the path they send. Fiber's Test dumps
	// RequestURI when set, and a client refuses it, so it is cleared.
	req.URL.Path, req.URL.Opaque = "", prefix+path
	req.URL.RawQuery = signedQuery(method, path, body, extra, o)
	req.RequestURI = ""
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// apiError decodes the {"error": "..."} body of a failed request.
func apiError(t testing.TB, body []byte) string {
	t.Helper()
	var e map[string]any
	require.NoError(t, json.Unmarshal(body, &e), "body is not JSON: %q", body)
	require.Len(t, e, 1, "body has fields other than error: %s", body)
	msg, ok := e["error"].(string)
	require.True(t, ok, "error is not a string: %s", body)
	return msg
}
