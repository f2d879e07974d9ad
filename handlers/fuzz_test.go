package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// requireAPIAnswer checks what every answer of the HTTP API must be: a
// JSON object, {"error": "..."} on failure, and never a server fault.
func requireAPIAnswer(t *testing.T, status int, body []byte) {
	t.Helper()
	require.Less(t, status, 500, "body: %s", body)
	var obj map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &obj), "body is not a JSON object: %q", body)
	if status != http.StatusOK {
		apiError(t, body)
	}
}

// FuzzTriggerBody posts arbitrary bodies, correctly signed, to POST
// events: the answer is 200, 400, 413 or 422 with a JSON body, never a
// 500 or a panic.
func FuzzTriggerBody(f *testing.F) {
	n := newNode(f, "")
	f.Add([]byte(`{"name":"e","data":"d","channels":["c"]}`))
	f.Add([]byte(`{"name":"e","data":"d","channel":"presence-x","info":"user_count,subscription_count"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > maxRequestSize {
			return // fasthttp refuses it before any handler; see TestHTTPAPIBodyLimit
		}
		status, got := n.do(t, signedRequest(http.MethodPost, "", eventsPath, body, nil, signOpts{}))
		requireAPIAnswer(t, status, got)
		require.Contains(t, []int{200, 400, 413, 422}, status, "body: %s", got)
	})
}

// fuzzRoutes are the GET routes FuzzSignatureQuery sends to.
var fuzzRoutes = []string{
	"/apps/" + appID + "/channels",
	"/apps/" + appID + "/channels/presence-x",
	"/apps/" + appID + "/channels/presence-x/users",
	"/apps/" + appID + "/connections",
	"/apps/nope/connections",
}

// requestTarget percent-encodes the bytes that cannot appear in an HTTP
// request line, and keeps every other byte, malformed escapes included.
func requestTarget(q string) string {
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c <= ' ' || c == '#' || c >= 0x7f {
			b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// parseQuery splits a query the simple way, as a client that built it
// would see it; where it differs from fasthttp the request fails its
// signature, which is fine.
func parseQuery(q string) url.Values {
	params := url.Values{}
	for _, pair := range strings.Split(q, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		params.Add(k, v)
	}
	return params
}

// FuzzSignatureQuery sends arbitrary query strings to the GET routes, alone
// and followed by auth parameters signed over them: never a 500 or a panic.
func FuzzSignatureQuery(f *testing.F) {
	n := newNode(f, "")
	f.Add("info=user_count,subscription_count&filter_by_prefix=presence-", uint8(0))
	f.Add("auth_key=app-key&auth_timestamp=1&auth_version=1.0&auth_signature=x", uint8(3))
	f.Fuzz(func(t *testing.T, query string, route uint8) {
		path := fuzzRoutes[int(route)%len(fuzzRoutes)]
		raw := requestTarget(query)
		if len(raw) > 3000 {
			return // over fasthttp's 4 KB header buffer; see TestHTTPAPIHeaderLimit
		}

		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RequestURI = path + "?" + raw
		status, got := n.do(t, req)
		requireAPIAnswer(t, status, got)

		params := parseQuery(raw)
		auth := url.Values{}
		auth.Set("auth_key", appKey)
		auth.Set("auth_timestamp", strconv.FormatInt(now(), 10))
		auth.Set("auth_version", "1.0")
		for k, v := range auth {
			params[k] = v
		}
		auth.Set("auth_signature", hmacHex(appSecret, signingString(http.MethodGet, path, params)))
		req = httptest.NewRequest(http.MethodGet, path, nil)
		req.RequestURI = path + "?" + raw + "&" + auth.Encode()
		status, got = n.do(t, req)
		requireAPIAnswer(t, status, got)
	})
}
