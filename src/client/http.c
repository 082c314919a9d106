/* http.c - libcurl-based JSON requests: one reused easy handle per client (not thread-safe:
 * one client per thread). */
#include "client/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/cleanup.h"
#include "util/fdio.h"
#include "util/hostport.h"
#include "util/jsonutil.h"

struct http_client {
	CURL *curl;
	char base_url[512];
	char unix_path[108];
	char authorization[600];  /* "Authorization: Bearer ..." or "" */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A TCP base must name a server: HOST:PORT with a port of 1-65535, nothing after it (curl would
 * otherwise take port 99999 as a URL error only when connecting, or a path as part of every
 * request's URL). */
static int check_tcp_base(const char *base, struct ember_error **err)
{
	const char *hostport = strncmp(base, "http://", 7) == 0 ? base + 7 : base;
	struct hostport where;

	return hostport_parse(hostport, 0, &where, err);
}

int http_client_create(const char *base, struct http_client **out, struct ember_error **err)
{
	struct http_client *c;

	if (strncmp(base, "unix:", 5) != 0 && check_tcp_base(base, err) < 0)
		return -1;
	pthread_once(&curl_once, curl_init_once);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	if (strncmp(base, "unix:", 5) == 0) {
		if (strlen(base + 5) >= sizeof(c->unix_path) || base[5] == '\0') {
			free(c);
			return ember_error_set(err, EMBER_E_INVALID, 0, "bad unix socket path `%s`",
					       base + 5);
		}
		strcpy(c->unix_path, base + 5);
		snprintf(c->base_url, sizeof(c->base_url), "http://localhost");
	} else if (strncmp(base, "http://", 7) == 0) {
		snprintf(c->base_url, sizeof(c->base_url), "%s", base);
	} else {
		snprintf(c->base_url, sizeof(c->base_url), "http://%s", base);
	}
	c->curl = curl_easy_init();
	if (c->curl == NULL) {
		free(c);
		return ember_error_set(err, EMBER_E_INTERNAL, 0, "curl_easy_init failed");
	}
	*out = c;
	return 0;
}

int http_client_set_token_file(struct http_client *c, const char *path, struct ember_error **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (file_read_all(path, 1024, &text, &len, err) < 0)
		return ember_error_wrap(err, "token file");
	len = strcspn(text, "\r\n");
	if (len == 0 || len > 512)
		return ember_error_set(err, EMBER_E_INVALID, 0,
				       "token file `%s`: its first line must hold the token (1 to 512 "
				       "characters)", path);
	snprintf(c->authorization, sizeof(c->authorization), "Authorization: Bearer %.*s",
		 (int)len, text);
	return 0;
}

void http_client_free(struct http_client *c)
{
	if (c == NULL)
		return;
	curl_easy_cleanup(c->curl);
	free(c);
}

struct sink {
	struct buf body;
	bool overflow;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct sink *s = userdata;
	size_t n = size * nmemb;

	if (s->body.len + n > HTTP_CLIENT_BODY_MAX || buf_append(&s->body, data, n) < 0) {
		s->overflow = true;
		return 0; /* aborts the transfer */
	}
	return n;
}

/* Where a reply's body goes: libcurl's write callback and its argument, and the media type
 * asked for. */
struct reply_to {
	curl_write_callback write;
	void *data;
	const char *accept;
};

/* Appends one header line to *list; out of memory leaves *list as it was (curl_slist_append
 * would return NULL and lose it) and fails. */
static int add_header(struct curl_slist **list, const char *line, struct ember_error **err)
{
	struct curl_slist *longer = curl_slist_append(*list, line);

	if (longer == NULL)
		return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
	*list = longer;
	return 0;
}

/* The request's options on the reused handle; *text (the serialised body) and *headers must
 * outlive the transfer and are the caller's to free. */
static int prepare_request(struct http_client *c, const char *method, const char *url,
			   json_t *body, long timeout_ms, const struct reply_to *to, char **text,
			   struct curl_slist **headers, struct ember_error **err)
{
	char accept[128];

	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, to->write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, to->data);
	if (timeout_ms > 0)
		curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (c->unix_path[0] != '\0')
		curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
	snprintf(accept, sizeof(accept), "Accept: %s", to->accept);
	if (add_header(headers, accept, err) < 0 ||
	    (c->authorization[0] != '\0' && add_header(headers, c->authorization, err) < 0) ||
	    /* No "Expect: 100-continue" round trip for larger bodies. */
	    add_header(headers, "Expect:", err) < 0)
		return -1;
	if (body != NULL) {
		*text = json_dumps(body, JSON_COMPACT);
		if (*text == NULL)
			return ember_error_set(err, EMBER_E_INTERNAL, ENOMEM, "out of memory");
		if (add_header(headers, "Content-Type: application/json", err) < 0)
			return -1;
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, *text);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(*text));
	} else if (strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, *headers);
	return 0;
}

/* The end of a request whose reply went to sink: the transfer's outcome, the status and, when
 * reply is wanted and there is a body, that body as a JSON object. */
static int finish_json(struct http_client *c, CURLcode rc, const struct sink *sink,
		       const char *method, const char *url, long *status, json_t **reply,
		       struct ember_error **err)
{
	if (rc != CURLE_OK)
		return ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "%s %s: %s%s", method, url,
				       curl_easy_strerror(rc),
				       sink->overflow ? " (reply too large)" : "");
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	if (reply != NULL && sink->body.len > 0 &&
	    json_parse_object(sink->body.data, sink->body.len, reply, EMBER_E_INTERNAL, err) < 0)
		return ember_error_wrap(err, "%s %s answered %ld with a body that is not a JSON "
				       "object", method, url, *status);
	return 0;
}

int http_client_request(struct http_client *c, const char *method, const char *path,
			json_t *body, long timeout_ms, long *status, json_t **reply,
			struct ember_error **err)
{
	struct sink sink = { 0 };
	struct curl_slist *headers = NULL;
	char url[16384], *text = NULL; /* a guest path escaped may be 12 KiB */
	CURLcode rc;
	int ret = -1;

	if (reply != NULL)
		*reply = NULL;
	snprintf(url, sizeof(url), "%s%s", c->base_url, path);
	if (prepare_request(c, method, url, body, timeout_ms,
			    &(struct reply_to){ on_data, &sink, "application/json" }, &text, &headers,
			    err) < 0)
		goto out;
	rc = curl_easy_perform(c->curl);
	ret = finish_json(c, rc, &sink, method, url, status, reply, err);
out:
	curl_slist_free_all(headers);
	free(text);
	buf_release(&sink.body);
	return ret;
}

struct stream_to {
	http_body_fn fn;
	void *ctx;
};

static size_t on_stream_data(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct stream_to *to = userdata;
	size_t n = size * nmemb;

	return to->fn(to->ctx, data, n) ? n : 0; /* 0 aborts the transfer */
}

int http_client_stream(struct http_client *c, const char *method, const char *path, json_t *body,
		       const char *accept, http_body_fn on_body, void *ctx, long *status,
		       struct ember_error **err)
{
	struct stream_to to = { on_body, ctx };
	struct curl_slist *headers = NULL;
	char url[1024], *text = NULL;
	CURLcode rc;
	int ret = -1;

	*status = 0;
	snprintf(url, sizeof(url), "%s%s", c->base_url, path);
	if (prepare_request(c, method, url, body, 0,
			    &(struct reply_to){ on_stream_data, &to, accept }, &text, &headers,
			    err) < 0)
		goto out;
	rc = curl_easy_perform(c->curl);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	if (rc != CURLE_OK) {
		ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "%s %s: %s", method, url,
				curl_easy_strerror(rc));
		goto out;
	}
	ret = 0;
out:
	curl_slist_free_all(headers);
	free(text);
	return ret;
}

/* --- raw bodies --- */

struct progress_to {
	http_progress_fn fn;
	void *ctx;
	bool upload;
};

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct progress_to *p = userdata;

	if (p->upload)
		p->fn(p->ctx, (uint64_t)ulnow, (uint64_t)ultotal);
	else
		p->fn(p->ctx, (uint64_t)dlnow, (uint64_t)dltotal);
	return 0;
}

static void set_progress(CURL *curl, struct progress_to *p)
{
	if (p->fn == NULL)
		return;
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, p);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
}

static size_t on_read_fd(char *buffer, size_t size, size_t nitems, void *userdata)
{
	int fd = *(int *)userdata;
	ssize_t n;

	do {
		n = read(fd, buffer, size * nitems);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
}

int http_client_upload(struct http_client *c, const char *method, const char *path, int fd,
		       int64_t size, http_progress_fn progress, void *pctx, long *status,
		       json_t **reply, struct ember_error **err)
{
	struct progress_to prog = { progress, pctx, true };
	struct sink sink = { 0 };
	struct curl_slist *headers = NULL;
	char url[16384], *text = NULL;
	CURLcode rc;
	int ret = -1;

	*reply = NULL;
	snprintf(url, sizeof(url), "%s%s", c->base_url, path);
	if (prepare_request(c, method, url, NULL, 0,
			    &(struct reply_to){ on_data, &sink, "application/json" }, &text, &headers,
			    err) < 0)
		goto out;
	if (add_header(&headers, "Content-Type: application/octet-stream", err) < 0)
		goto out;
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, on_read_fd);
	curl_easy_setopt(c->curl, CURLOPT_READDATA, &fd);
	if (size >= 0)
		curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
	set_progress(c->curl, &prog);
	rc = curl_easy_perform(c->curl);
	ret = finish_json(c, rc, &sink, method, url, status, reply, err);
out:
	curl_slist_free_all(headers);
	free(text);
	buf_release(&sink.body);
	return ret;
}

struct download_to {
	CURL *curl;
	int fd;
	uint64_t written;
	bool failed;            /* writing to fd failed */
	struct sink error_body; /* a non-2xx answer's body */
};

static size_t on_download_data(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct download_to *d = userdata;
	size_t n = size * nmemb;
	long code = 0;

	curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299)
		return on_data(data, size, nmemb, &d->error_body);
	if (fd_write_all(d->fd, data, n, -1, NULL) < 0) {
		d->failed = true;
		return 0;
	}
	d->written += n;
	return n;
}

int http_client_download(struct http_client *c, const char *path, int fd,
			 http_progress_fn progress, void *pctx, long *status, uint64_t *written,
			 json_t **reply, struct ember_error **err)
{
	struct progress_to prog = { progress, pctx, false };
	struct download_to d = { .curl = c->curl, .fd = fd };
	struct curl_slist *headers = NULL;
	char url[16384], *text = NULL;
	CURLcode rc;
	int ret = -1;

	*reply = NULL;
	*written = 0;
	snprintf(url, sizeof(url), "%s%s", c->base_url, path);
	if (prepare_request(c, "GET", url, NULL, 0,
			    &(struct reply_to){ on_download_data, &d, "*/*" }, &text, &headers,
			    err) < 0)
		goto out;
	set_progress(c->curl, &prog);
	rc = curl_easy_perform(c->curl);
	*written = d.written;
	if (rc != CURLE_OK) {
		ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "GET %s: %s%s", url,
				curl_easy_strerror(rc), d.failed ? " (writing the local file failed)"
								 : "");
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	if (d.error_body.body.len > 0 &&
	    json_parse_object(d.error_body.body.data, d.error_body.body.len, reply,
			      EMBER_E_INTERNAL, err) < 0) {
		ember_error_wrap(err, "GET %s answered %ld with a body that is not a JSON object",
				 url, *status);
		goto out;
	}
	ret = 0;
out:
	curl_slist_free_all(headers);
	free(text);
	buf_release(&d.error_body.body);
	return ret;
}

char *http_client_escape(struct http_client *c, const char *text)
{
	char *escaped = curl_easy_escape(c->curl, text, 0);
	char *copy = escaped != NULL ? strdup(escaped) : NULL;

	curl_free(escaped);
	return copy;
}

/* --- raw exchanges --- */

struct header_capture {
	const char *name;
	char *out;
	size_t size;
};

static size_t on_header(char *data, size_t size, size_t nitems, void *userdata)
{
	struct header_capture *h = userdata;
	size_t n = size * nitems, name_len = strlen(h->name), len;
	const char *value;

	if (n > name_len && data[name_len] == ':' && strncasecmp(data, h->name, name_len) == 0) {
		value = data + name_len + 1;
		len = n - name_len - 1;
		while (len > 0 && (*value == ' ' || *value == '\t')) {
			value++;
			len--;
		}
		while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' ||
				   value[len - 1] == ' '))
			len--;
		if (len < h->size) {
			memcpy(h->out, value, len);
			h->out[len] = '\0';
		}
	}
	return n;
}

int http_client_exchange(struct http_client *c, const char *method, const char *path,
			 const char *body, size_t body_len, const char *const *header_lines,
			 const char *capture, char *captured, size_t captured_size, long *status,
			 char **reply, size_t *reply_len, struct ember_error **err)
{
	struct header_capture h = { capture, captured, captured_size };
	struct sink sink = { 0 };
	struct curl_slist *headers = NULL;
	char url[1024], *text = NULL;
	CURLcode rc;
	int ret = -1;

	*reply = NULL;
	*reply_len = 0;
	if (captured_size > 0)
		captured[0] = '\0';
	snprintf(url, sizeof(url), "%s%s", c->base_url, path);
	if (prepare_request(c, method, url, NULL, 0,
			    &(struct reply_to){ on_data, &sink,
						"application/json, text/event-stream" },
			    &text, &headers, err) < 0)
		goto out;
	/* Appended after the list was handed to curl: the head stays, curl reads it at perform. */
	for (; header_lines != NULL && *header_lines != NULL; header_lines++) {
		if (add_header(&headers, *header_lines, err) < 0)
			goto out;
	}
	if (body != NULL) {
		if (add_header(&headers, "Content-Type: application/json", err) < 0)
			goto out;
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	if (capture != NULL) {
		curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, &h);
	}
	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		ember_error_set(err, EMBER_E_UNAVAILABLE, 0, "%s %s: %s%s", method, url,
				curl_easy_strerror(rc), sink.overflow ? " (reply too large)" : "");
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	if (sink.body.len > 0) {
		if (buf_terminate(&sink.body) < 0) {
			ember_error_oom(err);
			goto out;
		}
		*reply_len = sink.body.len;
		*reply = (char *)steal_pointer(&sink.body.data);
	}
	ret = 0;
out:
	curl_slist_free_all(headers);
	free(text);
	buf_release(&sink.body);
	return ret;
}
