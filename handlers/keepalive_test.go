package handlers_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptrace"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHTTPKeepAlive sends several requests, failed ones included, over one
// TCP connection to a real listener: HTTP/1.1 keep-alive works (Reverb
// closes after each request).
func TestHTTPKeepAlive(t *testing.T) {
	t.Parallel()
	n := newNode(t, "")
	transport := &http.Transport{MaxIdleConnsPerHost: 1}
	client := &http.Client{Transport: transport}
	t.Cleanup(transport.CloseIdleConnections)

	requests := []struct {
		req  *http.Request
		want int
	}{
		{signedRequest(http.MethodGet, "", "/up", nil, nil, signOpts{}), http.StatusOK},
		{signedRequest(http.MethodPost, "", eventsPath, trigger(t, nil), nil, signOpts{}), http.StatusOK},
		{signedRequest(http.MethodGet, "", "/apps/"+appID+"/channels", nil, nil, signOpts{}), http.StatusOK},
		{signedRequest(http.MethodPost, "", eventsPath, trigger(t, nil), nil, signOpts{signature: "bad"}), http.StatusUnauthorized},
		{signedRequest(http.MethodPost, "", eventsPath, []byte(`{`), nil, signOpts{}), http.StatusBadRequest},
		{signedRequest(http.MethodGet, "", "/apps/nope/connections", nil, nil, signOpts{}), http.StatusNotFound},
		{signedRequest(http.MethodGet, "", "/apps/"+appID+"/connections", nil, nil, signOpts{}), http.StatusOK},
	}
	var local string
	for i, r := range requests {
		var info httptrace.GotConnInfo
		req := r.req.WithContext(httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { info = i },
		}))
		req.URL.Scheme, req.URL.Host = "http", n.srv.Addr()
		resp, err := client.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())

		assert.Equal(t, r.want, resp.StatusCode, "request %d: %s", i, body)
		assert.False(t, resp.Close, "request %d: the server asked to close the connection", i)
		assert.True(t, bytes.HasPrefix(body, []byte("{")), "request %d: body is not a JSON object: %s", i, body)
		if i == 0 {
			local = info.Conn.LocalAddr().String()
			continue
		}
		assert.True(t, info.Reused, "request %d opened a new connection", i)
		assert.Equal(t, local, info.Conn.LocalAddr().String(), "request %d", i)
	}
}
