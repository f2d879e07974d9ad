package handlers_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHTTPAPIAcceptsLimits sends requests right at each documented limit:
// every one is accepted.
func TestHTTPAPIAcceptsLimits(t *testing.T) {
	t.Parallel()
	n := newNode(t, "")
	valid := trigger(t, nil)
	post := func(body []byte, o signOpts) *http.Request {
		return signedRequest(http.MethodPost, "", eventsPath, body, nil, o)
	}
	// A body of exactly FIZZ_MAX_REQUEST_SIZE bytes: a valid trigger padded
	// with an unknown field.
	padded := trigger(t, map[string]any{"pad": ""})
	padded = trigger(t, map[string]any{"pad": strings.Repeat("p", maxRequestSize-len(padded))})
	require.Len(t, padded, maxRequestSize)

	tests := []struct {
		name string
		give *http.Request
	}{
		{"auth_timestamp 599 s in the past", post(valid, signOpts{offset: -599})},
		{"auth_timestamp 599 s in the future", post(valid, signOpts{offset: 599})},
		{"no auth_version", post(valid, signOpts{drop: []string{"auth_version"}})},
		{"upper-case body_md5", post(valid, signOpts{bodyMD5: strings.ToUpper(md5Hex(valid))})},
		{"signed extra query params", signedRequest(http.MethodPost, "", eventsPath, valid, url.Values{"foo": {"a b+c/é"}}, signOpts{})},
		{"data of exactly 10 KB", post(trigger(t, map[string]any{"data": strings.Repeat("d", 10<<10)}), signOpts{})},
		{"100 channels", post(trigger(t, map[string]any{"channels": channelNames(100)}), signOpts{})},
		{"200-char event name", post(trigger(t, map[string]any{"name": strings.Repeat("e", 200)}), signOpts{})},
		{"200-char channel name", post(trigger(t, map[string]any{"channels": []string{strings.Repeat("c", 200)}}), signOpts{})},
		{"every channel-name character", post(trigger(t, map[string]any{"channels": []string{"AZaz09_-=@,.;", "#server-to-user-1"}}), signOpts{})},
		{"channel instead of channels", post(trigger(t, map[string]any{"channels": nil, "channel": "my-channel"}), signOpts{})},
		{"socket_id to exclude", post(trigger(t, map[string]any{"socket_id": "123.456"}), signOpts{})},
		{"empty socket_id", post(trigger(t, map[string]any{"socket_id": ""}), signOpts{})},
		{"body of exactly FIZZ_MAX_REQUEST_SIZE", post(padded, signOpts{})},
		{"batch of 10", signedRequest(http.MethodPost, "", batchPath, jsonBody(t, map[string]any{"batch": batchOf(10)}), nil, signOpts{})},
		{"empty batch", signedRequest(http.MethodPost, "", batchPath, []byte(`{"batch":[]}`), nil, signOpts{})},
		{"user id with escapes", signedRequest(http.MethodPost, "", "/apps/"+appID+"/users/a%20b/terminate_connections", nil, nil, signOpts{})},
		{"other app with its own key", signedRequest(http.MethodPost, "", "/apps/"+otherID+"/events", valid, nil, signOpts{key: otherKey, secret: otherSecret})},
	}
	identity := post(valid, signOpts{})
	identity.Header.Set("Content-Encoding", "identity")
	tests = append(tests, struct {
		name string
		give *http.Request
	}{"Content-Encoding identity", identity})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := n.do(t, tt.give)
			assert.Equal(t, http.StatusOK, status, "body: %s", body)
			assert.JSONEq(t, `{}`, string(body))
		})
	}
}

// TestHTTPAPIPathPrefix checks that the FIZZ_SERVER_PATH prefix is
// stripped before signing, as pusher-http-* sign /apps/… whatever the
// host's path.
func TestHTTPAPIPathPrefix(t *testing.T) {
	t.Parallel()
	n := newNode(t, "/ws")
	valid := trigger(t, nil)

	status, body := n.do(t, signedRequest(http.MethodPost, "/ws", eventsPath, valid, nil, signOpts{}))
	assert.Equal(t, http.StatusOK, status, "body: %s", body)

	status, body = n.do(t, signedRequest(http.MethodPost, "/ws", eventsPath, valid, nil, signOpts{signPath: "/ws" + eventsPath}))
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, apiError(t, body), "Invalid auth_signature")

	status, body = n.do(t, signedRequest(http.MethodPost, "", eventsPath, valid, nil, signOpts{}))
	assert.Equal(t, http.StatusNotFound, status, "the API is only under the prefix")
	apiError(t, body)
}

// TestHTTPAPIBodyLimit sends a body over FIZZ_MAX_REQUEST_SIZE over a real
// socket: fasthttp refuses it while reading, before any handler, and the
// ErrorHandler still answers JSON. (Fiber's in-process Test returns the
// read error itself instead of the response, hence the listener.)
func TestHTTPAPIBodyLimit(t *testing.T) {
	t.Parallel()
	n := newNode(t, "")
	body := trigger(t, map[string]any{"pad": strings.Repeat("p", maxRequestSize)})
	req := signedRequest(http.MethodPost, "", eventsPath, body, nil, signOpts{})
	req.URL.Scheme, req.URL.Host = "http", n.srv.Addr()

	resp, got := refusedWhileSending(t, req)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Contains(t, apiError(t, got.Bytes()), "Request Entity Too Large")
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// TestHTTPAPIContentEncoding checks that a Content-Encoding header never
// makes the server inflate a body: Fiber's Ctx.Body() decompresses gzip,
// deflate and brotli with no size limit, so a small request could expand
// far beyond FIZZ_MAX_REQUEST_SIZE, and before the signature is checked
// (the attacker needs only the public app key).
func TestHTTPAPIContentEncoding(t *testing.T) {
	t.Parallel()
	n := newNode(t, "")
	// 1 MB once inflated, about 1 KB on the wire.
	inflated := trigger(t, map[string]any{"pad": strings.Repeat(" ", 1<<20)})
	compressed := gzipped(t, inflated)
	require.Less(t, len(compressed), maxRequestSize/10)

	send := func(t *testing.T, body []byte, o signOpts) (int, string) {
		req := signedRequest(http.MethodPost, "", eventsPath, body, nil, o)
		req.Header.Set("Content-Encoding", "gzip")
		status, got := n.do(t, req)
		return status, apiError(t, got)
	}

	t.Run("inflated body is never accepted", func(t *testing.T) {
		// body_md5 of the inflated body: what the server checks today.
		status, msg := send(t, compressed, signOpts{bodyMD5: md5Hex(inflated)})
		assert.Equal(t, http.StatusUnauthorized, status, "a 1 MB body went past FIZZ_MAX_REQUEST_SIZE=%d inside %d gzip bytes", maxRequestSize, len(compressed))
		assert.Equal(t, "body_md5 does not match the body", msg)
	})
	t.Run("body_md5 covers the bytes sent", func(t *testing.T) {
		// As pusher-http-* compute it: over the bytes on the wire. The
		// signature holds; the encoding is refused.
		status, msg := send(t, compressed, signOpts{})
		assert.Equal(t, http.StatusUnsupportedMediaType, status, msg)
		assert.Equal(t, `Content-Encoding "gzip" is not supported`, msg)
	})
	t.Run("no inflating before the signature is checked", func(t *testing.T) {
		status, msg := send(t, compressed, signOpts{signature: strings.Repeat("0", 64)})
		assert.Equal(t, http.StatusUnauthorized, status)
		assert.Equal(t, "Invalid auth_signature", msg, "the body was inflated before the signature was checked")
	})
}

// TestHTTPAPIQueryCoveredBySignature checks that every query value the
// handlers read is covered by the signature: a duplicated key, or a key
// differing only in case, must not smuggle an unsigned value past it.
func TestHTTPAPIQueryCoveredBySignature(t *testing.T) {
	t.Parallel()
	n := newNode(t, "")
	path := "/apps/" + appID + "/channels"
	signed := signedQuery(http.MethodGet, path, nil, url.Values{"filter_by_prefix": {"presence-"}}, signOpts{})

	tests := []struct {
		name       string
		give       string // query sent
		wantPhrase string
	}{
		// Fiber's c.Query reads the first value, the signature check the last.
		{"duplicate key, unsigned value first", "filter_by_prefix=private-&" + signed, `query parameter "filter_by_prefix" is repeated`},
		{"duplicate key, unsigned value last", signed + "&filter_by_prefix=private-", `query parameter "filter_by_prefix" is repeated`},
		// The signing string keeps one of two keys that differ only in case.
		{"case variant of a signed key", signed + "&FILTER_BY_PREFIX=private-", `query parameter "FILTER_BY_PREFIX" is repeated`},
		{"repeated auth_signature", signed + "&auth_signature=x", `query parameter "auth_signature" is repeated`},
		{"case variant of a new key", signed + "&Info=user_count", "Invalid auth_signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := signedRequest(http.MethodGet, "", path, nil, nil, signOpts{})
			req.URL.RawQuery = tt.give
			status, body := n.do(t, req)
			assert.Equal(t, http.StatusUnauthorized, status, "body: %s", body)
			assert.Contains(t, apiError(t, body), tt.wantPhrase)
		})
	}
}

// TestHTTPAPIHeaderLimit sends a request line longer than fasthttp's 4 KB
// read buffer over a real socket: 431 with a JSON error, not a dropped
// connection. (Fiber's in-process Test returns the read error instead.)
func TestHTTPAPIHeaderLimit(t *testing.T) {
	t.Parallel()
	n := newNode(t, "")
	req := signedRequest(http.MethodGet, "", "/apps/"+appID+"/channels", nil, url.Values{"filter_by_prefix": {strings.Repeat("p", 5000)}}, signOpts{})
	req.URL.Scheme, req.URL.Host = "http", n.srv.Addr()

	resp, got := refusedWhileSending(t, req)
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	assert.Contains(t, apiError(t, got.Bytes()), "Request Header Fields Too Large")
}

// refusedWhileSending sends a request the server refuses before reading it
// all. fasthttp answers and closes with part of the request unread, so the
// kernel may reset the connection before the client reads the answer: a
// reset is retried, and one of ten tries must get the answer.
func refusedWhileSending(t *testing.T, req *http.Request) (*http.Response, *bytes.Buffer) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	t.Cleanup(client.CloseIdleConnections)
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		require.NoError(t, err)
	}
	var lastErr error
	for range 10 {
		r := req.Clone(req.Context())
		r.RequestURI = "" // a client request must not have one
		r.Body = io.NopCloser(bytes.NewReader(body))
		resp, err := client.Do(r)
		if err != nil {
			lastErr = err
			continue
		}
		got := new(bytes.Buffer)
		_, err = got.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return resp, got
	}
	t.Fatalf("no answer in 10 tries; last error: %v", lastErr)
	return nil, nil
}
