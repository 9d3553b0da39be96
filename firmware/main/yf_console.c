/* Console driver glue: USB-Serial-JTAG (driver/usb_serial_jtag.h) or UART (driver/uart.h), with the VFS
 * switched to the interrupt-driven driver so stdout writes block instead of dropping bytes. */
#include "yf_console.h"

#include <stdio.h>

#include "freertos/FreeRTOS.h"
#include "sdkconfig.h"
#include "yf_board_config.h"

#if YF_CONSOLE_USB_SERIAL_JTAG
#include "driver/usb_serial_jtag.h"
#include "driver/usb_serial_jtag_vfs.h"
#else
#include "driver/uart.h"
#include "driver/uart_vfs.h"
#endif

#define YF_CONSOLE_RX_BUF 16384 /* a 12 KiB protocol line fits with room to spare */
#define YF_CONSOLE_TX_BUF 4096

esp_err_t yf_console_init(void)
{
    /* Unbuffered stdout: each fwrite below is one complete line, pushed out at once. */
    setvbuf(stdout, NULL, _IONBF, 0);
#if YF_CONSOLE_USB_SERIAL_JTAG
    usb_serial_jtag_driver_config_t cfg = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
    cfg.rx_buffer_size = YF_CONSOLE_RX_BUF;
    cfg.tx_buffer_size = YF_CONSOLE_TX_BUF;
    esp_err_t err = usb_serial_jtag_driver_install(&cfg);
    if (err != ESP_OK) {
        return err;
    }
    usb_serial_jtag_vfs_use_driver();
#else
    esp_err_t err = uart_driver_install((uart_port_t)CONFIG_ESP_CONSOLE_UART_NUM, YF_CONSOLE_RX_BUF,
                                        YF_CONSOLE_TX_BUF, 0, NULL, 0);
    if (err != ESP_OK) {
        return err;
    }
    uart_vfs_dev_use_driver(CONFIG_ESP_CONSOLE_UART_NUM);
#endif
    return ESP_OK;
}

void yf_console_write_line(const char *line, size_t len)
{
    if (len == 0) {
        return;
    }
    flockfile(stdout);
    fwrite(line, 1, len, stdout);
    funlockfile(stdout);
}

size_t yf_console_read(uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    if (cap == 0) {
        return 0;
    }
#if YF_CONSOLE_USB_SERIAL_JTAG
    /* Returns as soon as any bytes are in the driver's ring buffer (xRingbufferReceiveUpTo). */
    int n = usb_serial_jtag_read_bytes(buf, (uint32_t)cap, pdMS_TO_TICKS(timeout_ms));
#else
    /* uart_read_bytes waits for all `length` bytes: wait for one, then take what is already buffered. */
    const uart_port_t port = (uart_port_t)CONFIG_ESP_CONSOLE_UART_NUM;
    int n = uart_read_bytes(port, buf, 1, pdMS_TO_TICKS(timeout_ms));
    size_t avail = 0;
    if (n == 1 && cap > 1 && uart_get_buffered_data_len(port, &avail) == ESP_OK && avail > 0) {
        int more = uart_read_bytes(port, buf + 1, (uint32_t)(avail < cap - 1 ? avail : cap - 1), 0);
        n += more > 0 ? more : 0;
    }
#endif
    return n > 0 ? (size_t)n : 0;
}
