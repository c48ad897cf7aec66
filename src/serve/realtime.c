#include "serve.h"
#include <microhttpd.h>
struct MHD_Response *srv_realtime_upgrade(srv_server *s, struct MHD_Connection *c,
                                          const char *query_model, srv_reply *r) {
    srv_reply_error(r, 501, "invalid_request_error", NULL, NULL, "not yet");
    return NULL;
}
void srv_realtime_drain(srv_server *s) {}
