// Command client is the interop test client of tests/interop/SCENARIOS.md,
// built on the Go reference kite (github.com/koding/kite).
//
//	client --url URL [--transport WebSocket|XHRPolling] [--kite-key FILE] [--token JWT]
//
// It runs every scenario against the server at URL over one connection and
// prints one JSON line per scenario:
//
//	{"scenario": NAME, "ok": BOOL, "result": VALUE, "error": {"type","message"} | null}
//
// then exits 0 if every scenario passed, 1 otherwise. secretWithKey and
// secretWithToken only run (and print) when --kite-key / --token are given.
// Diagnostics go to stderr.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koding/kite"
	"github.com/koding/kite/config"
	"github.com/koding/kite/dnode"

	"kiteinterop/internal/kitejwt"
)

const callTimeout = 10 * time.Second

type errorOut struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

type line struct {
	Scenario string          `json:"scenario"`
	OK       bool            `json:"ok"`
	Result   json.RawMessage `json:"result"`
	Error    *errorOut       `json:"error"`
}

type runner struct {
	c            *kite.Client
	disconnected int32 // set once the client's session is gone
	failed       bool
	out          *json.Encoder
}

// outcome of one scenario: the (last) call's result and error, plus the check.
type outcome struct {
	result *dnode.Partial
	err    error
	ok     bool
	why    string // why it failed, for stderr
}

func (r *runner) report(name string, o outcome) {
	l := line{Scenario: name, OK: o.ok, Result: json.RawMessage("null")}
	if o.result != nil && len(o.result.Raw) > 0 {
		l.Result = json.RawMessage(o.result.Raw)
	}
	if o.err != nil {
		l.Error = toErrorOut(o.err)
	}
	if !o.ok {
		r.failed = true
		fmt.Fprintf(os.Stderr, "interop client: scenario %s FAILED: %s\n", name, o.why)
	}
	r.out.Encode(l)
}

func toErrorOut(err error) *errorOut {
	if e, ok := err.(*kite.Error); ok {
		return &errorOut{Type: e.Type, Message: e.Message}
	}
	return &errorOut{Type: "clientError", Message: err.Error()}
}

func (r *runner) tell(method string, args ...interface{}) (*dnode.Partial, error) {
	type answer struct {
		res *dnode.Partial
		err error
	}
	if atomic.LoadInt32(&r.disconnected) != 0 {
		// The reference client would block for ever (see below).
		return nil, &kite.Error{Type: "disconnect", Message: "the session was lost before this call"}
	}
	ch := make(chan answer, 1)
	go func() {
		res, err := r.c.TellWithTimeout(method, callTimeout, args...)
		ch <- answer{res, err}
	}()
	select {
	case a := <-ch:
		return a.res, a.err
	case <-time.After(callTimeout + 5*time.Second):
		// The reference client blocks for ever on a call made after its
		// session was lost (its send loop has quit); its own timeout only
		// starts once the message is handed over.
		return nil, &kite.Error{Type: "timeout", Message: fmt.Sprintf("the reference client did not send %q (session lost?)", method)}
	}
}

// noArgs makes Tell send "withArgs": [] instead of null.
var noArgs = []interface{}{}

func main() {
	url := flag.String("url", "", "URL of the interop server, e.g. http://127.0.0.1:PORT/kite")
	transport := flag.String("transport", "WebSocket", "WebSocket or XHRPolling")
	kiteKeyFile := flag.String("kite-key", "", "kite key `FILE` for the secretWithKey scenario")
	token := flag.String("token", "", "token `JWT` for the secretWithToken scenario")
	flag.Parse()

	if *url == "" {
		fmt.Fprintln(os.Stderr, "interop client: --url is required")
		os.Exit(2)
	}
	if os.Getenv("KITE_LOG_NOCOLOR") == "" {
		os.Setenv("KITE_LOG_NOCOLOR", "1")
	}

	var kiteKey string
	if *kiteKeyFile != "" {
		data, err := ioutil.ReadFile(*kiteKeyFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "interop client: reading --kite-key: %s\n", err)
			os.Exit(2)
		}
		kiteKey = strings.TrimSpace(string(data))
	}

	k := kite.New("interop-client", "1.0.0")
	if strings.EqualFold(os.Getenv("KITE_LOG_LEVEL"), "debug") {
		// KITE_LOG_LEVEL alone leaves the log handler at INFO.
		k.SetLogLevel(kite.DEBUG)
	}
	switch *transport {
	case "WebSocket":
		k.Config.Transport = config.WebSocket
	case "XHRPolling":
		k.Config.Transport = config.XHRPolling
	default:
		fmt.Fprintf(os.Stderr, "interop client: unknown --transport %q\n", *transport)
		os.Exit(2)
	}
	if kiteKey != "" {
		k.Config.KiteKey = kiteKey
		if sub, err := kitejwt.Subject(kiteKey); err == nil && sub != "" {
			k.Config.Username = sub
		}
	}

	// Served to the remote side over the same connection (callMeBack). Calls
	// arriving on a connection this kite dialed are trusted by the reference.
	k.HandleFunc("square", func(r *kite.Request) (interface{}, error) {
		n := r.Args.One().MustFloat64()
		return n * n, nil
	}).DisableAuthentication()

	r := &runner{out: json.NewEncoder(os.Stdout)}

	c := k.NewClient(*url)
	c.OnDisconnect(func() {
		atomic.StoreInt32(&r.disconnected, 1)
		fmt.Fprintln(os.Stderr, "interop client: disconnected from the server")
	})
	if err := c.DialTimeout(10 * time.Second); err != nil {
		r.report("connect", outcome{err: err, why: err.Error()})
		os.Exit(1)
	}
	r.c = c

	r.run(kiteKey, *token)

	closed := make(chan struct{})
	go func() {
		c.Close()
		k.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
	}
	if r.failed {
		os.Exit(1)
	}
	os.Exit(0)
}

func isNumber(p *dnode.Partial, want float64) bool {
	if p == nil {
		return false
	}
	f, err := p.Float64()
	return err == nil && f == want
}

func jsonEqual(p *dnode.Partial, want string) bool {
	if p == nil {
		return want == "null"
	}
	var a, b interface{}
	if json.Unmarshal(p.Raw, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

func raw(p *dnode.Partial) string {
	if p == nil {
		return "<nil>"
	}
	return string(p.Raw)
}

func expectValue(res *dnode.Partial, err error, want string) outcome {
	o := outcome{result: res, err: err}
	switch {
	case err != nil:
		o.why = "unexpected error: " + err.Error()
	case !jsonEqual(res, want):
		o.why = fmt.Sprintf("result %s, want %s", raw(res), want)
	default:
		o.ok = true
	}
	return o
}

func expectError(res *dnode.Partial, err error, typ, message string) outcome {
	o := outcome{result: res, err: err}
	e, isKiteErr := err.(*kite.Error)
	switch {
	case err == nil:
		o.why = fmt.Sprintf("no error (result %s), want %s", raw(res), typ)
	case !isKiteErr:
		o.why = fmt.Sprintf("error %v (%T), want a kite error %s", err, err, typ)
	case e.Type != typ:
		o.why = fmt.Sprintf("error type %q (%s), want %q", e.Type, e.Message, typ)
	case message != "" && e.Message != message:
		o.why = fmt.Sprintf("error message %q, want %q", e.Message, message)
	default:
		o.ok = true
	}
	return o
}

func (r *runner) run(kiteKey, token string) {
	// square
	{
		res, err := r.tell("square", 4)
		r.report("square", expectValue(res, err, "16"))
	}

	// echoObject
	{
		arg := map[string]interface{}{"a": 1, "b": []interface{}{true, nil, "x"}}
		res, err := r.tell("echo", arg)
		r.report("echoObject", expectValue(res, err, `[{"a":1,"b":[true,null,"x"]}]`))
	}

	// echoScalar: the Go client always sends withArgs as an array.
	{
		res, err := r.tell("echo", 5)
		r.report("echoScalar", expectValue(res, err, `[5]`))
	}

	// echoNull: Tell without arguments sends "withArgs": null.
	{
		res, err := r.tell("echo")
		o := outcome{result: res, err: err}
		switch {
		case err != nil:
			o.why = "unexpected error: " + err.Error()
		case res == nil || jsonEqual(res, "null") || jsonEqual(res, "[]"):
			o.ok = true
		default:
			o.why = fmt.Sprintf("result %s, want null or []", raw(res))
		}
		r.report("echoNull", o)
	}

	// callback
	{
		var mu sync.Mutex
		var got []float64
		fn := dnode.Callback(func(args *dnode.Partial) {
			mu.Lock()
			defer mu.Unlock()
			var a []float64
			if err := args.Unmarshal(&a); err != nil || len(a) != 1 {
				got = append(got, -1)
				return
			}
			got = append(got, a[0])
		})
		res, err := r.tell("callback", 3, fn)
		o := expectValue(res, err, "3")
		mu.Lock()
		calls := append([]float64(nil), got...)
		mu.Unlock()
		if o.ok && !reflect.DeepEqual(calls, []float64{0, 1, 2}) {
			o.ok = false
			o.why = fmt.Sprintf("callback called with %v, want [0 1 2]", calls)
		}
		r.report("callback", o)
	}

	// nested
	{
		var mu sync.Mutex
		var got []string
		mk := func() dnode.Function {
			return dnode.Callback(func(args *dnode.Partial) {
				mu.Lock()
				defer mu.Unlock()
				var a []string
				if err := args.Unmarshal(&a); err != nil || len(a) != 1 {
					got = append(got, "<bad args: "+raw(args)+">")
					return
				}
				got = append(got, a[0])
			})
		}
		arg := map[string]interface{}{
			"a": mk(),
			"b": map[string]interface{}{"c": []interface{}{mk()}},
		}
		res, err := r.tell("nested", arg)
		o := expectValue(res, err, `"ok"`)
		mu.Lock()
		calls := append([]string(nil), got...)
		mu.Unlock()
		if o.ok && !reflect.DeepEqual(calls, []string{"a", "c"}) {
			o.ok = false
			o.why = fmt.Sprintf("callbacks called with %q, want [a c]", calls)
		}
		r.report("nested", o)
	}

	// fail
	{
		res, err := r.tell("fail", noArgs...)
		r.report("fail", expectError(res, err, "genericError", "boom"))
	}

	// methodNotFound
	{
		res, err := r.tell("noSuchMethod", noArgs...)
		r.report("methodNotFound", expectError(res, err, "methodNotFound", ""))
	}

	// argumentError
	{
		res, err := r.tell("needString", 1)
		r.report("argumentError", expectError(res, err, "argumentError", ""))
	}

	// ping
	{
		res, err := r.tell("kite.ping")
		r.report("ping", expectValue(res, err, `"pong"`))
	}

	// systemInfo
	{
		res, err := r.tell("kite.systemInfo")
		o := outcome{result: res, err: err}
		var info map[string]interface{}
		switch {
		case err != nil:
			o.why = "unexpected error: " + err.Error()
		case res == nil || json.Unmarshal(res.Raw, &info) != nil:
			o.why = "result is not an object: " + raw(res)
		default:
			o.ok = true
			for _, key := range []string{"state", "uname"} {
				if _, ok := info[key]; !ok {
					o.ok = false
					o.why = fmt.Sprintf("result has no %q: %s", key, raw(res))
				}
			}
		}
		r.report("systemInfo", o)
	}

	// heartbeat: fn called at least twice (now, then every second).
	{
		calls := make(chan struct{}, 16)
		fn := dnode.Callback(func(*dnode.Partial) {
			select {
			case calls <- struct{}{}:
			default:
			}
		})
		res, err := r.tell("kite.heartbeat", 1, fn)
		o := outcome{result: res, err: err}
		if err != nil {
			o.why = "unexpected error: " + err.Error()
		} else {
			n := 0
			deadline := time.After(5 * time.Second)
		wait:
			for n < 2 {
				select {
				case <-calls:
					n++
				case <-deadline:
					break wait
				}
			}
			if n >= 2 {
				o.ok = true
			} else {
				o.why = fmt.Sprintf("heartbeat callback called %d time(s) in 5s, want >= 2", n)
			}
		}
		r.report("heartbeat", o)
	}

	// callMeBack: the server calls our "square" over the same connection.
	{
		res, err := r.tell("callMeBack", "square", []interface{}{3})
		r.report("callMeBack", expectValue(res, err, "9"))
	}

	// secretWithKey
	if kiteKey != "" {
		want, _ := kitejwt.Subject(kiteKey)
		r.c.Auth = &kite.Auth{Type: "kiteKey", Key: kiteKey}
		res, err := r.tell("secret")
		r.c.Auth = nil
		wantJSON, _ := json.Marshal(want)
		r.report("secretWithKey", expectValue(res, err, string(wantJSON)))
	}

	// secretWithToken
	if token != "" {
		want, _ := kitejwt.Subject(token)
		r.c.Auth = &kite.Auth{Type: "token", Key: token}
		res, err := r.tell("secret")
		r.c.Auth = nil
		wantJSON, _ := json.Marshal(want)
		r.report("secretWithToken", expectValue(res, err, string(wantJSON)))
	}

	// secretWithout
	{
		res, err := r.tell("secret")
		r.report("secretWithout", expectError(res, err, "authenticationError", ""))
	}

	// limited: the second call is refused.
	{
		r.tell("limited")
		res, err := r.tell("limited")
		r.report("limited", expectError(res, err, "requestLimitError", ""))
	}
}
