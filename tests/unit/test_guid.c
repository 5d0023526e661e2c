/* GUID checks (spec 1.11): the strict task-ID form, the loose form, lower-casing. */
#include "guid.h"
#include "unit.h"

int main(void)
{
    char out[GUID_LEN + 1];
    /* a task ID as Qlik Sense writes it, any case */
    CHECK(guid_task_id("fb0f317d-da91-4b86-aafa-0174ae1e8c8f", out));
    CHECK_STR(out, "fb0f317d-da91-4b86-aafa-0174ae1e8c8f");
    CHECK(guid_task_id("FB0F317D-DA91-4B86-AAFA-0174AE1E8C8F", out));
    CHECK_STR(out, "fb0f317d-da91-4b86-aafa-0174ae1e8c8f");
    CHECK(guid_task_id("fb0f317d-da91-4b86-aafa-0174ae1e8c8f", NULL));
    /* strict: version digit 0-5, variant 8, 9, a or b */
    CHECK(!guid_task_id("fb0f317d-da91-6b86-aafa-0174ae1e8c8f", NULL));
    CHECK(!guid_task_id("fb0f317d-da91-4b86-cafa-0174ae1e8c8f", NULL));
    CHECK(guid_task_id("fb0f317d-da91-0b86-Bafa-0174ae1e8c8f", NULL));
    /* loose: any hex digit there */
    CHECK(guid_loose("fb0f317d-da91-6b86-cafa-0174ae1e8c8f", out));
    CHECK_STR(out, "fb0f317d-da91-6b86-cafa-0174ae1e8c8f");
    CHECK(guid_loose("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", out));
    CHECK_STR(out, "ffffffff-ffff-ffff-ffff-ffffffffffff");
    /* wrong shapes: length, dashes, non-hex; OUT is left alone on failure */
    out[0] = 'Z';
    CHECK(!guid_loose("", out));
    CHECK(!guid_loose("fb0f317d-da91-4b86-aafa-0174ae1e8c8", out));
    CHECK(!guid_loose("fb0f317d-da91-4b86-aafa-0174ae1e8c8ff", out));
    CHECK(!guid_loose("fb0f317dda91-4b86-aafa-0174ae1e8c8f-", out));
    CHECK(!guid_loose("gb0f317d-da91-4b86-aafa-0174ae1e8c8f", out));
    CHECK(!guid_loose("{b0f317d-da91-4b86-aafa-0174ae1e8c8}", out));
    CHECK(!guid_task_id("fb0f317d-da91-4b86-aafa-0174ae1e8c8g", out));
    CHECK(out[0] == 'Z');
    return UNIT_DONE();
}
