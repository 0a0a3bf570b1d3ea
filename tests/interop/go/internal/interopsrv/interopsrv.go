// Package interopsrv builds the "interop" kite of tests/interop/SCENARIOS.md
// with the Go reference kite. It is shared by cmd server (the test server)
// and cmd capture (which records the frames the reference server sends).
package interopsrv

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/koding/kite"
	"github.com/koding/kite/config"
	"github.com/koding/kite/dnode"
)

// Options configure the interop kite.
type Options struct {
	KontrolKey  string // PEM public key of the test Kontrol ("" = none)
	KontrolUser string // expected issuer of tokens
	Username    string // the kite's own username
	KiteKey     string // the kite's own kite key, sent when it calls back ("" = none)

	// NoXHRPollGuard serves the reference's SockJS handler as it is, without
	// the work-around of xhrguard.go for its xhr-polling race.
	NoXHRPollGuard bool
}

// New returns the interop kite, listening (once Run) on 127.0.0.1, port 0.
func New(o Options) *kite.Kite {
	// The reference registers its default methods (kite.systemInfo,
	// kite.heartbeat, kite.log, ...) with authentication on; only kite.ping
	// has it off. SCENARIOS.md wants every method but "secret" callable
	// without authentication, so the default methods are registered while the
	// kite-wide DisableAuthentication is set, and it is cleared afterwards so
	// that methods added later (secret) require authentication again.
	cfg := config.New()
	cfg.DisableAuthentication = true
	k := kite.NewWithConfig("interop", "1.0.0", cfg)
	k.Config.DisableAuthentication = false
	if strings.EqualFold(os.Getenv("KITE_LOG_LEVEL"), "debug") {
		// KITE_LOG_LEVEL alone leaves the log handler at INFO.
		k.SetLogLevel(kite.DEBUG)
	}
	k.Config.IP = "127.0.0.1"
	k.Config.Port = 0
	k.Config.Username = o.Username
	k.Config.KontrolUser = o.KontrolUser
	// Kontrol puts the trimmed PEM into the kontrolKey claim of the kite keys
	// it signs, and the kite compares that claim with this string verbatim.
	k.Config.KontrolKey = strings.TrimSpace(o.KontrolKey)

	if !o.NoXHRPollGuard {
		k.Config.Serve = func(l net.Listener, h http.Handler) error {
			return http.Serve(l, NewXHRPollGuard(h))
		}
	}

	if key := strings.TrimSpace(o.KiteKey); key != "" {
		k.Config.KiteKey = key
		// Calls made back to a connected peer (callMeBack) carry our kite key.
		// OnConnect handlers run before the connection's read loop starts.
		k.OnConnect(func(c *kite.Client) {
			c.Auth = &kite.Auth{Type: "kiteKey", Key: key}
		})
	}

	Register(k)
	return k
}

// Register adds the scenario methods to k.
func Register(k *kite.Kite) {
	k.HandleFunc("square", func(r *kite.Request) (interface{}, error) {
		n := r.Args.One().MustFloat64()
		return n * n, nil
	}).DisableAuthentication()

	k.HandleFunc("echo", func(r *kite.Request) (interface{}, error) {
		// withArgs exactly as received: array, scalar or null.
		if r.Args == nil {
			return nil, nil
		}
		return json.RawMessage(r.Args.Raw), nil
	}).DisableAuthentication()

	k.HandleFunc("callback", func(r *kite.Request) (interface{}, error) {
		args := r.Args.MustSliceOfLength(2)
		n := args[0].MustFloat64()
		fn := args[1].MustFunction()
		for i := 0; i < int(n); i++ {
			if err := fn.Call(i); err != nil {
				return nil, err
			}
		}
		return n, nil
	}).DisableAuthentication()

	k.HandleFunc("nested", func(r *kite.Request) (interface{}, error) {
		// dnode finds callbacks by Go field name (its first letter upper-cased).
		var arg struct {
			A dnode.Function `json:"a"`
			B struct {
				C []dnode.Function `json:"c"`
			} `json:"b"`
		}
		r.Args.One().MustUnmarshal(&arg)
		if !arg.A.IsValid() || len(arg.B.C) != 1 || !arg.B.C[0].IsValid() {
			return nil, &kite.Error{Type: "argumentError", Message: `expected [{"a": fn, "b": {"c": [fn]}}]`}
		}
		if err := arg.A.Call("a"); err != nil {
			return nil, err
		}
		if err := arg.B.C[0].Call("c"); err != nil {
			return nil, err
		}
		return "ok", nil
	}).DisableAuthentication()

	k.HandleFunc("fail", func(r *kite.Request) (interface{}, error) {
		return nil, errors.New("boom")
	}).DisableAuthentication()

	k.HandleFunc("needString", func(r *kite.Request) (interface{}, error) {
		// MustString panics with a *dnode.ArgumentError, which the kite turns
		// into an argumentError response.
		return r.Args.One().MustString(), nil
	}).DisableAuthentication()

	k.HandleFunc("callMeBack", func(r *kite.Request) (interface{}, error) {
		args := r.Args.MustSliceOfLength(2)
		method := args[0].MustString()
		var callArgs []interface{}
		args[1].MustUnmarshal(&callArgs)
		result, err := r.Client.TellWithTimeout(method, 10*time.Second, callArgs...)
		if err != nil {
			return nil, err
		}
		if result == nil {
			return nil, nil
		}
		return json.RawMessage(result.Raw), nil
	}).DisableAuthentication()

	// Authentication required (the kite-wide default).
	k.HandleFunc("secret", func(r *kite.Request) (interface{}, error) {
		return r.Username, nil
	})

	k.HandleFunc("limited", func(r *kite.Request) (interface{}, error) {
		return "ok", nil
	}).DisableAuthentication().Throttle(time.Hour, 1)
}
