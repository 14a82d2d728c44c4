/* /init for the RTMR2 ground-truth experiment (scripts/tdx-rtmr2-experiment.sh).
 *
 * Mounts sysfs, securityfs and devtmpfs, prints the firmware's TCG2 event log
 * (/sys/kernel/security/tpm0/binary_bios_measurements) hex-encoded between two
 * marker lines on the serial console, then powers the VM off. Built with
 * `cc -static -Os`, so the initrd needs nothing else. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

int main(void) {
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("securityfs", "/sys/kernel/security", "securityfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    FILE *out = fopen("/dev/ttyS0", "w");
    if (!out) out = stdout;
    int fd = open("/sys/kernel/security/tpm0/binary_bios_measurements", O_RDONLY);
    fprintf(out, "\nCVMFORGE-EVENTLOG-BEGIN\n");
    if (fd < 0) {
        fprintf(out, "CVMFORGE-EVENTLOG-MISSING\n");
    } else {
        unsigned char buf[4096];
        ssize_t n;
        long col = 0;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < n; i++) {
                fprintf(out, "%02x", buf[i]);
                if (++col % 64 == 0) fputc('\n', out);
            }
        }
    }
    fprintf(out, "\nCVMFORGE-EVENTLOG-END\n");
    fflush(out);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
