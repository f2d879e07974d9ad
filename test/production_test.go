package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files
// and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fizz test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

func TestTLSServesWSSAndHTTPS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, roots := selfSigned(t)
	n := harness.Start(t, func(c *app.Config) {
		c.Server.TLSCert, c.Server.TLSKey = certFile, keyFile
	})
	tlsConfig := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}

	ws, err := pusherclient.DialWith("wss://"+n.Addr+"/app/"+harness.AppKey+"?protocol=7", pusherclient.Options{TLS: tlsConfig})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.Close() })
	_, err = ws.Subscribe("tls-channel", "", "")
	require.NoError(t, err)

	client := &pusherhttp.Client{
		AppID: harness.AppID, Key: harness.AppKey, Secret: harness.AppSecret,
		Host: n.Addr, Secure: true,
		HTTPClient: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}},
	}
	require.NoError(t, client.Trigger("tls-channel", "greeting", "over https"))
	f, err := ws.Expect("greeting", "tls-channel", 5*time.Second)
	require.NoError(t, err)
	assert.JSONEq(t, `"over https"`, string(f.Data))

	// A plain-text client gets nowhere: the port speaks TLS only.
	_, err = pusherclient.DialWith(n.WSURL(harness.AppKey), pusherclient.Options{Timeout: 2 * time.Second})
	assert.Error(t, err)
}

// TestBadSettingsExitTwo runs the real binary with settings that must stop
// it at start with status 2 and one line naming the setting.
func TestBadSettingsExitTwo(t *testing.T) {
	t.Parallel()
	certFile, _, _ := selfSigned(t)
	tests := []struct {
		name string
		give []string
		want string
	}{
		{"missing certificate file", []string{"FIZZ_TLS_CERT=/nonexistent/cert.pem", "FIZZ_TLS_KEY=/nonexistent/key.pem"}, "FIZZ_TLS_CERT"},
		{"key that is not a key", []string{"FIZZ_TLS_CERT=" + certFile, "FIZZ_TLS_KEY=" + certFile}, "FIZZ_TLS_KEY"},
		{"port out of range", []string{"FIZZ_SERVER_PORT=70000"}, "FIZZ_SERVER_PORT"},
	}
	bin := harness.Binary(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "FIZZ_METRICS_PORT=0", "FIZZ_SERVER_HOST=127.0.0.1", "FIZZ_SERVER_PORT=0"}, tt.give...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "output: %s", out)
			assert.Equal(t, 2, exit.ExitCode())
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			assert.Len(t, lines, 1, "output: %s", out)
			assert.Contains(t, string(out), tt.want)
		})
	}
}

// TestDrainOnSIGTERM checks the drain order on a real process: /ready turns
// 503 before any socket is closed, sockets then get 4200, and the process
// exits 0 within the stop timeout.
func TestDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	p := harness.StartProcess(t, map[string]string{"FIZZ_SHUTDOWN_GRACE": "1s"})
	ready := func() int {
		resp, err := p.HTTP.Get(p.HTTPURL + "/ready")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, ready())

	c, err := pusherclient.Dial(p.WSURL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = c.Subscribe("drain", "", "")
	require.NoError(t, err)

	exited := make(chan int, 1)
	start := time.Now()
	go func() { exited <- p.Terminate(20 * time.Second) }()

	// Draining stops accepting at once (so a new process may take the
	// port) and turns /ready 503 on a connection kept open: either way a
	// load balancer sees the node unready.
	deadline := time.Now().Add(5 * time.Second)
	for status := ready(); status != http.StatusServiceUnavailable && status != 0; status = ready() {
		require.True(t, time.Now().Before(deadline), "/ready never turned 503 or refused")
	}
	_, _, closed := c.CloseStatus()
	assert.False(t, closed, "a socket was closed as soon as the node turned unready")

	code, _, err := c.WaitClosed(10 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 4200, code)
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "sockets closed before the grace period")
	select {
	case status := <-exited:
		assert.Equal(t, 0, status, "exit status; output:\n%s", p.Output())
	case <-time.After(20 * time.Second):
		t.Fatal("the process did not exit")
	}
}

// TestDebugLogsFrames runs the real binary with FIZZ_DEBUG and no terminal:
// logs are JSON lines, and every frame in and out is logged (the cut of
// long frames is Excerpt's unit test).
func TestDebugLogsFrames(t *testing.T) {
	t.Parallel()
	p := harness.StartProcess(t, map[string]string{"FIZZ_DEBUG": "true", "FIZZ_LOG_FORMAT": ""})
	c, err := pusherclient.Dial(p.WSURL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = c.Subscribe("debug-channel", "", "")
	require.NoError(t, err)

	var in, out bool
	require.Eventually(t, func() bool {
		in, out = false, false
		for _, line := range strings.Split(strings.TrimSpace(p.Output()), "\n") {
			var entry map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &entry), "a log line that is not JSON: %s", line)
			frame, _ := entry["frame"].(string)
			switch entry["msg"] {
			case "frame in":
				in = in || strings.Contains(frame, "pusher:subscribe")
			case "frame out":
				out = out || strings.Contains(frame, "subscription_succeeded")
			}
		}
		return in && out
	}, 5*time.Second, 10*time.Millisecond, "frames in: %v, frames out: %v\n%s", in, out, p.Output())
}
