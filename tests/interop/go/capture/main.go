// Command capture records golden dnode messages of the Go reference kite, to
// pin the JSON shapes our implementation must produce and accept:
//
//   - client-*.json: what the reference *client* sends. A SockJS recorder
//     (github.com/igm/sockjs-go, the library the reference serves with) is
//     mounted at /kite; a reference client dials it and makes calls; the
//     recorder answers each call by hand so that the client completes.
//   - server-*.json: what the reference *server* sends. The interop kite
//     (internal/interopsrv, the same code as cmd server) runs in-process and a
//     raw SockJS-over-websocket client sends hand-written calls; each request
//     sent is saved next to the answers as *.request.json.
//
// Every file holds one message, byte for byte as received (the string inside
// the SockJS frame), with no trailing newline. Values that are random per run
// (request ids, kite ids, JWTs, hostnames) differ between captures.
//
//	capture --out DIR
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/igm/sockjs-go/sockjs"
	"github.com/koding/kite"
	"github.com/koding/kite/config"
	"github.com/koding/kite/dnode"

	"kiteinterop/internal/interopsrv"
	"kiteinterop/internal/kitejwt"
)

var outDir string

func main() {
	flag.StringVar(&outDir, "out", "", "directory for the golden files (created)")
	flag.Parse()
	if outDir == "" {
		fail("--out is required")
	}
	if os.Getenv("KITE_LOG_NOCOLOR") == "" {
		os.Setenv("KITE_LOG_NOCOLOR", "1")
	}
	if err := os.MkdirAll(outDir, 0755); err != nil {
		fail("%s", err)
	}

	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	check(err)
	pub, err := kitejwt.PublicPEM(priv)
	check(err)
	clientKey, err := kitejwt.MintKiteKey(priv, kitejwt.KiteKeyOptions{Issuer: "testuser", Username: "alice", KontrolKey: pub, KontrolURL: "http://127.0.0.1:4000/kite"})
	check(err)
	serverKey, err := kitejwt.MintKiteKey(priv, kitejwt.KiteKeyOptions{Issuer: "testuser", Username: "testuser", KontrolKey: pub, KontrolURL: "http://127.0.0.1:4000/kite"})
	check(err)
	token, err := kitejwt.MintToken(priv, kitejwt.TokenOptions{Issuer: "testuser", Username: "bob", Audience: "/testuser/unknown/interop", TTL: time.Hour})
	check(err)

	captureClient(clientKey, token)
	captureServer(pub, serverKey, clientKey, token)
	fmt.Fprintf(os.Stderr, "capture: wrote %s\n", outDir)
}

// ---------------------------------------------------------------------------
// Helpers

func check(err error) {
	if err != nil {
		fail("%s", err)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "capture: "+format+"\n", args...)
	os.Exit(1)
}

func save(name, msg string) {
	check(ioutil.WriteFile(filepath.Join(outDir, name+".json"), []byte(msg), 0644))
}

// message is a decoded dnode message.
type message struct {
	Method    interface{}              `json:"method"`
	Arguments json.RawMessage          `json:"arguments"`
	Callbacks map[string][]interface{} `json:"callbacks"`
}

func decode(msg string) message {
	var m message
	if err := json.Unmarshal([]byte(msg), &m); err != nil {
		fail("not a dnode message: %s: %s", err, msg)
	}
	return m
}

// callbackID returns the id whose callback path is path (elements compared as
// text, so 0 and "0" are equal).
func callbackID(m message, path ...interface{}) string {
	want := fmt.Sprint(path...)
	for id, p := range m.Callbacks {
		if len(p) == len(path) && fmt.Sprint(p...) == want {
			return id
		}
	}
	fail("no callback at %v in %v", path, m.Callbacks)
	return ""
}

// callMsg is a call of callback id with args, as the reference writes it.
func callMsg(id string, args ...interface{}) string {
	if args == nil {
		args = []interface{}{}
	}
	a, _ := json.Marshal(args)
	return fmt.Sprintf(`{"method":%s,"arguments":%s,"callbacks":{}}`, id, a)
}

func reply(id string, result interface{}) string {
	return callMsg(id, map[string]interface{}{"error": nil, "result": result})
}

// ---------------------------------------------------------------------------
// Part 1: what the reference client sends.

type recorder struct {
	sessions chan sockjs.Session
	msgs     chan string
}

func startRecorder() (url string, rec *recorder) {
	rec = &recorder{sessions: make(chan sockjs.Session, 1), msgs: make(chan string, 64)}
	h := sockjs.NewHandler("/kite", sockjs.DefaultOptions, func(s sockjs.Session) {
		rec.sessions <- s
		for {
			msg, err := s.Recv()
			if err != nil {
				return
			}
			rec.msgs <- msg
		}
	})
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	check(err)
	go http.Serve(l, h)
	return fmt.Sprintf("http://%s/kite", l.Addr()), rec
}

func (r *recorder) next() string {
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(10 * time.Second):
		fail("recorder: no message in 10s")
		return ""
	}
}

func wait(ch chan error, what string) {
	select {
	case err := <-ch:
		if err != nil {
			fail("%s: %s", what, err)
		}
	case <-time.After(10 * time.Second):
		fail("%s: no answer in 10s", what)
	}
}

func captureClient(clientKey, token string) {
	url, rec := startRecorder()

	k := kite.New("capture-client", "1.0.0")
	k.Config.Transport = config.WebSocket
	k.Config.Username = "alice"
	k.HandleFunc("square", func(r *kite.Request) (interface{}, error) {
		n := r.Args.One().MustFloat64()
		return n * n, nil
	}).DisableAuthentication()

	c := k.NewClient(url)
	check(c.DialTimeout(10 * time.Second))
	var session sockjs.Session
	select {
	case session = <-rec.sessions:
	case <-time.After(10 * time.Second):
		fail("recorder: no session")
	}
	send := func(msg string) { check(session.Send(msg)) }

	// tell runs c.Tell in the background; the returned channel gets its error.
	tell := func(method string, args ...interface{}) chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := c.TellWithTimeout(method, 10*time.Second, args...)
			ch <- err
		}()
		return ch
	}

	// square [4]
	done := tell("square", 4)
	msg := rec.next()
	save("client-call-square", msg)
	send(reply(callbackID(decode(msg), 0, "responseCallback"), 16))
	wait(done, "square")

	// a call with no arguments: withArgs is null
	done = tell("kite.ping")
	msg = rec.next()
	save("client-call-noargs", msg)
	send(reply(callbackID(decode(msg), 0, "responseCallback"), "pong"))
	wait(done, "kite.ping")

	// a call with an empty argument list: withArgs is []
	done = tell("fail", []interface{}{}...)
	msg = rec.next()
	save("client-call-emptyargs", msg)
	send(reply(callbackID(decode(msg), 0, "responseCallback"), nil))
	wait(done, "fail")

	// a callback argument: callback [2, fn]; the recorder calls fn(0) first
	called := make(chan string, 4)
	fn := dnode.Callback(func(p *dnode.Partial) { called <- string(p.Raw) })
	done = tell("callback", 2, fn)
	msg = rec.next()
	save("client-call-callback", msg)
	m := decode(msg)
	send(callMsg(callbackID(m, 0, "withArgs", 1), 0))
	send(reply(callbackID(m, 0, "responseCallback"), 2))
	wait(done, "callback")
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		fail("callback: fn was not called")
	}

	// callbacks nested in objects and arrays
	nop := func() dnode.Function { return dnode.Callback(func(*dnode.Partial) {}) }
	done = tell("nested", map[string]interface{}{"a": nop(), "b": map[string]interface{}{"c": []interface{}{nop()}}})
	msg = rec.next()
	save("client-call-nested", msg)
	send(reply(callbackID(decode(msg), 0, "responseCallback"), "ok"))
	wait(done, "nested")

	// kiteKey authentication
	c.Auth = &kite.Auth{Type: "kiteKey", Key: clientKey}
	done = tell("secret")
	msg = rec.next()
	save("client-call-kitekey-auth", msg)
	send(reply(callbackID(decode(msg), 0, "responseCallback"), "alice"))
	wait(done, "secret (kiteKey)")

	// token authentication
	c.Auth = &kite.Auth{Type: "token", Key: token}
	done = tell("secret")
	msg = rec.next()
	save("client-call-token-auth", msg)
	send(reply(callbackID(decode(msg), 0, "responseCallback"), "bob"))
	wait(done, "secret (token)")
	c.Auth = nil

	// The remote side calls the client's own "square" over the same
	// connection: the client's answer.
	callOpts := `{"kite":{"username":"recorder","environment":"test","name":"recorder","version":"1.0.0","region":"test","hostname":"recorder","id":"00000000-0000-0000-0000-000000000000"},"authentication":null,"withArgs":%s,"responseCallback":"[Function]"}`
	req := fmt.Sprintf(`{"method":"square","arguments":[`+callOpts+`],"callbacks":{"0":[0,"responseCallback"]}}`, "[3]")
	send(req)
	save("client-answer-square.request", req)
	save("client-answer-square", rec.next())

	req = fmt.Sprintf(`{"method":"noSuchMethod","arguments":[`+callOpts+`],"callbacks":{"1":[0,"responseCallback"]}}`, "[]")
	send(req)
	save("client-answer-methodNotFound.request", req)
	save("client-answer-methodNotFound", rec.next())

	c.Close()
	k.Close()
}

// ---------------------------------------------------------------------------
// Part 2: what the reference server sends, to a raw SockJS websocket client.

type rawClient struct {
	ws    *websocket.Conn
	queue []string
}

func dialRaw(kiteURL string) *rawClient {
	wsURL := strings.Replace(kiteURL, "http://", "ws://", 1) + "/000/capture0000000000000/websocket"
	h := http.Header{"Origin": {"http://" + strings.Split(strings.TrimPrefix(kiteURL, "http://"), "/")[0]}}
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, h)
	check(err)
	_, open, err := ws.ReadMessage()
	check(err)
	if string(open) != "o" {
		fail("expected SockJS open frame, got %q", open)
	}
	return &rawClient{ws: ws}
}

func (r *rawClient) send(msg string) {
	frame, _ := json.Marshal([]string{msg})
	check(r.ws.WriteMessage(websocket.TextMessage, frame))
}

func (r *rawClient) next() string {
	for len(r.queue) == 0 {
		check(r.ws.SetReadDeadline(time.Now().Add(10 * time.Second)))
		_, frame, err := r.ws.ReadMessage()
		check(err)
		switch {
		case string(frame) == "h":
		case strings.HasPrefix(string(frame), "a"):
			var msgs []string
			check(json.Unmarshal(frame[1:], &msgs))
			r.queue = append(r.queue, msgs...)
		default:
			fail("unexpected SockJS frame %q", frame)
		}
	}
	m := r.queue[0]
	r.queue = r.queue[1:]
	return m
}

const rawKite = `{"username":"capture","environment":"test","name":"capture","version":"1.0.0","region":"test","hostname":"capture","id":"00000000-0000-0000-0000-000000000000"}`

// call builds a call as the reference client shapes it. withArgs is raw JSON
// ("" leaves the key out), auth is raw JSON ("" leaves it out), extra
// callbacks are "id":[path] entries besides the responseCallback with id 0.
func call(method, auth, withArgs, extraCallbacks string) string {
	opts := `{"kite":` + rawKite
	if auth != "" {
		opts += `,"authentication":` + auth
	}
	opts += `,"responseCallback":"[Function]"`
	if withArgs != "" {
		opts += `,"withArgs":` + withArgs
	}
	opts += `}`
	cbs := `"0":[0,"responseCallback"]`
	if extraCallbacks != "" {
		cbs += "," + extraCallbacks
	}
	return `{"method":"` + method + `","arguments":[` + opts + `],"callbacks":{` + cbs + `}}`
}

func captureServer(pub, serverKey, clientKey, token string) {
	k := interopsrv.New(interopsrv.Options{
		KontrolKey:  pub,
		KontrolUser: "testuser",
		Username:    "testuser",
		KiteKey:     serverKey,
	})
	go k.Run()
	<-k.ServerReadyNotify()
	defer k.Close()

	rc := dialRaw(fmt.Sprintf("http://127.0.0.1:%d/kite", k.Port()))

	// exchange sends req (saved as NAME.request) and saves the next message as NAME.
	exchange := func(name, req string) string {
		save(name+".request", req)
		rc.send(req)
		msg := rc.next()
		save(name, msg)
		return msg
	}

	exchange("server-square", call("square", "null", "[4]", ""))
	exchange("server-methodNotFound", call("noSuchMethod", "null", "[]", ""))
	exchange("server-argumentError", call("needString", "null", "[1]", ""))
	exchange("server-square-wrongType", call("square", "null", `["x"]`, ""))
	exchange("server-genericError", call("fail", "null", "[]", ""))
	exchange("server-square-scalarArgs", call("square", "null", "5", ""))
	exchange("server-echo-scalarArgs", call("echo", "null", "5", ""))
	exchange("server-echo-nullArgs", call("echo", "null", "null", ""))
	exchange("server-echo-absentArgs", call("echo", "", "", ""))
	exchange("server-echo-object", call("echo", "null", `[{"a":1,"b":[true,null,"x"]}]`, ""))
	exchange("server-ping", call("kite.ping", "null", "null", ""))
	exchange("server-secret-noAuth", call("secret", "null", "null", ""))
	exchange("server-secret-unknownAuthType", call("secret", `{"type":"bogus","key":"x"}`, "null", ""))
	exchange("server-secret-kiteKey", call("secret", `{"type":"kiteKey","key":"`+clientKey+`"}`, "null", ""))
	exchange("server-secret-token", call("secret", `{"type":"token","key":"`+token+`"}`, "null", ""))
	exchange("server-secret-badToken", call("secret", `{"type":"token","key":"not.a.jwt"}`, "null", ""))
	exchange("server-limited-1", call("limited", "null", "[]", ""))
	exchange("server-limited-2", call("limited", "null", "[]", ""))

	// kite.js style: callback path elements as strings, and a "links" key.
	jsStyle := `{"method":"square","arguments":[{"kite":` + rawKite + `,"withArgs":[4],"responseCallback":"[Function]"}],"callbacks":{"0":["0","responseCallback"]},"links":[]}`
	exchange("server-square-stringPath", jsStyle)

	// callback [2, fn]: two calls of fn, then the response.
	exchange("server-callback-invoke-0", call("callback", "null", `[2,"[Function]"]`, `"1":[0,"withArgs",1]`))
	save("server-callback-invoke-1", rc.next())
	save("server-callback", rc.next())

	// nested: fn1("a"), fn2("c"), then the response (ids 1 and 2).
	exchange("server-nested-invoke-a", call("nested", "null", `[{"a":"[Function]","b":{"c":["[Function]"]}}]`, `"1":[0,"withArgs",0,"a"],"2":[0,"withArgs",0,"b","c",0]`))
	save("server-nested-invoke-c", rc.next())
	save("server-nested", rc.next())

	// callMeBack ["square", [3]]: the server calls "square" on us (with its
	// kite key), we answer 9, then it answers the original call.
	out := exchange("server-callMeBack-outgoingCall", call("callMeBack", "null", `["square",[3]]`, ""))
	m := decode(out)
	if m.Method != "square" {
		fail("callMeBack: expected a square call, got %s", out)
	}
	rc.send(reply(callbackID(m, 0, "responseCallback"), 9))
	save("server-callMeBack", rc.next())

	// kite.heartbeat [1, fn]: fn is called at once (no arguments), the
	// response follows, then fn again every second. Last, since it goes on.
	exchange("server-heartbeat-invoke", call("kite.heartbeat", "null", `[1,"[Function]"]`, `"1":[0,"withArgs",1]`))
	save("server-heartbeat", rc.next())

	rc.ws.Close()
}
