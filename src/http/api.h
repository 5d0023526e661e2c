/* Endpoint handlers, one file per endpoint family; the route table names them. */
#ifndef API_H
#define API_H

struct req;

void api_ping(struct req *r);
void api_v2_ping(struct req *r);
void api_base62tobase16(struct req *r);
void api_base16tobase62(struct req *r);
void api_v2_base62tobase16(struct req *r);
void api_v2_base16tobase62(struct req *r);
void api_endpointsenabled(struct req *r);
void api_kv_namespaces(struct req *r);
void api_kv_get(struct req *r);
void api_kv_exists(struct req *r);
void api_kv_post(struct req *r);
void api_kv_del(struct req *r);
void api_kv_del_ns(struct req *r);
void api_kv_keylist(struct req *r);
void api_task_start(struct req *r);
void api_v2_start_task(struct req *r);
void api_apps_list(struct req *r);
void api_mqtt_publish(struct req *r);
void api_v2_mqtt_publish(struct req *r);
void api_active_user_count(struct req *r);
void api_v2_active_user_count(struct req *r);
void api_active_users(struct req *r);
void api_filecopy(struct req *r);
void api_filemove(struct req *r);
void api_filedelete(struct req *r);
void api_createdir(struct req *r);
void api_createdirqvd(struct req *r);
void api_v2_createdir(struct req *r);
void api_v2_createdirqvd(struct req *r);
void api_slack_post(struct req *r);
void api_v2_slack_post(struct req *r);
void api_newrelic_event(struct req *r);
void api_newrelic_metric(struct req *r);
void api_app_dump(struct req *r);
void api_v2_app_dump(struct req *r);
void api_app_reload(struct req *r);
void api_sched_get(struct req *r);
void api_sched_create(struct req *r);
void api_sched_delete(struct req *r);
void api_sched_start(struct req *r);
void api_sched_stop(struct req *r);
void api_sched_startall(struct req *r);
void api_sched_stopall(struct req *r);
void api_sched_status(struct req *r);
void api_metrics(struct req *r);
void api_health(struct req *r);
void api_ready(struct req *r);
void api_docs_html(struct req *r);
void api_docs_json(struct req *r);
void api_docs_yaml(struct req *r);

#endif
