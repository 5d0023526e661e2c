/* butlerd-import's month renumbering (src/import/imp_cron.c): Butler's months
 * 0-11 become 1-12; names, steps and the other fields are left alone. */
#include "imp_cron.h"
#include "unit.h"

static const char *shift(const char *expr)
{
    static char out[256];
    char err[128];
    return imp_cron_shift(expr, out, sizeof out, err, sizeof err) == 0 ? out : NULL;
}

int main(void)
{
    CHECK_STR(shift("0 0 1 0 *"), "0 0 1 1 *");
    CHECK_STR(shift("0 0 1 11 *"), "0 0 1 12 *");
    CHECK_STR(shift("30 2 * * 1-5"), "30 2 * * 1-5");
    CHECK_STR(shift("0 0 1 0-5/2 *"), "0 0 1 1-6/2 *");
    CHECK_STR(shift("0 0 1 3,6,9 *"), "0 0 1 4,7,10 *");
    CHECK_STR(shift("0 0 1 */3 *"), "0 0 1 */3 *");
    CHECK_STR(shift("0 0 1 2/4 *"), "0 0 1 3/4 *");
    CHECK_STR(shift("0 0 1 jan-mar *"), "0 0 1 jan-mar *");
    CHECK_STR(shift("15 0 0 1 6 *"), "15 0 0 1 7 *");
    CHECK_STR(shift("  0   0 1 0 *  "), "0 0 1 1 *");
    CHECK(shift("0 0 1 12 *") == NULL);
    CHECK(shift("0 0 1 x *") == NULL);
    CHECK(shift("0 0 1 1,,2 *") == NULL);
    CHECK(shift("0 0 1") == NULL);
    CHECK(shift("0 0 1 99999999999 *") == NULL);
    return UNIT_DONE();
}
