"""What the agent says, in English and Chinese. ``say(key, lang, **values)`` formats one message."""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, dict[str, str]] = {
    "greet": {
        "en": "Hello! I can audit orders, pay them, check or cancel tasks, send e-mails and help with "
        "uploads. What can I do for you?",
        "zh": "你好！我可以审核订单、支付订单、查询或取消任务、发送邮件、协助上传文件。需要我做什么？",
    },
    "help": {
        "en": 'Try: "audit order 66120", "pay order 12345, 1000 yuan", "what\'s the status of task 42?", '
        '"cancel task 42", "email the receipt for 66120 to a@example.com". I ask for anything missing '
        "and confirm before I move money.",
        "zh": "可以这样说：“审核订单 66120”、“支付订单 12345，1000 元”、“任务 42 什么状态？”、“取消任务 42”、"
        "“把订单 66120 的收据发到 a@example.com”。缺少的信息我会问你，付款前会先请你确认。",
    },
    "out_of_scope": {
        "en": "Sorry, I can't help with that. I handle orders and tasks: audits, payments, status, "
        'cancellations, e-mails. Say "help" for examples.',
        "zh": "抱歉，这个我帮不了。我负责订单和任务：审核、付款、查询进度、取消、发邮件。说“帮助”查看示例。",
    },
    "unsure": {
        "en": 'Sorry, I\'m not sure what you mean. You can say "audit order 66120" or "help".',
        "zh": "抱歉，我没太明白。你可以说“审核订单 66120”或“帮助”。",
    },
    "ask.order_audit.order_no": {
        "en": "Which order should I audit? Please give me the order number.",
        "zh": "要审核哪个订单？请告诉我订单号。",
    },
    "ask.order_payment.order_no": {
        "en": "Which order should I pay? Please give me the order number.",
        "zh": "要支付哪个订单？请告诉我订单号。",
    },
    "ask.order_payment.amount": {
        "en": "How much should I charge for order {order_no}? (for example 1288.50 yuan)",
        "zh": "订单 {order_no} 要支付多少金额？（例如 1288.50 元）",
    },
    "ask.send_email.email": {
        "en": "Which e-mail address should I send it to?",
        "zh": "要发到哪个邮箱地址？",
    },
    "ask.upload_file.file_name": {
        "en": "Which file? Tell me its name, for example invoice_66120.pdf.",
        "zh": "哪个文件？请告诉我文件名，例如 invoice_66120.pdf。",
    },
    "ask.task_status.task_id": {
        "en": "Which task? Give me the task number (or the order number).",
        "zh": "哪个任务？请告诉我任务编号（或订单号）。",
    },
    "ask.cancel_task.task_id": {
        "en": "Which task should I cancel? Give me the task number.",
        "zh": "要取消哪个任务？请告诉我任务编号。",
    },
    "still_waiting": {
        "en": "I still need that to go on. ",
        "zh": "我还需要这个信息才能继续。",
    },
    "confirm.order_payment": {
        "en": "Please confirm: charge {amount} {currency} for order {order_no}? (yes / no)",
        "zh": "请确认：为订单 {order_no} 支付 {amount} {currency}？（确认 / 取消）",
    },
    "confirm.again": {
        "en": "Please answer yes or no. ",
        "zh": "请回答“确认”或“取消”。",
    },
    "updated": {"en": "Updated. ", "zh": "已更新。"},
    "declined.order_payment": {
        "en": "OK, I won't charge order {order_no}. Nothing was paid.",
        "zh": "好的，不支付订单 {order_no}，没有扣款。",
    },
    "dropped": {
        "en": "OK, I dropped that request. Nothing was started.",
        "zh": "好的，已放弃这个请求，没有启动任何任务。",
    },
    "started.order_audit": {
        "en": "Started the audit of order {order_no}: task #{id} ({url}). Ask me for its status any time.",
        "zh": "已开始审核订单 {order_no}：任务 #{id}（{url}）。随时可以问我进度。",
    },
    "started.order_audit.run": {
        "en": "Started order fulfilment for order {order_no} (audit, then payment if approved): "
        "run #{id} ({url}).",
        "zh": "已为订单 {order_no} 启动订单处理流程（先审核，通过后付款）：流程 #{id}（{url}）。",
    },
    "started.order_payment": {
        "en": "Payment of {amount} {currency} for order {order_no} started: task #{id} ({url}).",
        "zh": "已发起订单 {order_no} 的付款 {amount} {currency}：任务 #{id}（{url}）。",
    },
    "started.send_email": {
        "en": "Sending the e-mail to {email}: task #{id} ({url}).",
        "zh": "正在发送邮件到 {email}：任务 #{id}（{url}）。",
    },
    "upload_info": {
        "en": "I can't receive file contents in chat. Upload {file_name} in the web console or with "
        "POST /api/v1/files; I did not start anything.",
        "zh": "聊天里无法接收文件内容。请在网页控制台或通过 POST /api/v1/files 上传 {file_name}；"
        "我没有启动任何任务。",
    },
    "unavailable": {
        "en": "This server cannot do that yet: no '{name}' task type or workflow is installed.",
        "zh": "这个服务器暂时做不了：没有安装 '{name}' 任务类型或流程。",
    },
    "failed_to_start": {
        "en": "I could not start it: {error}",
        "zh": "无法启动：{error}",
    },
    "cancelled.task": {"en": "Cancelled task #{id} ({url}).", "zh": "已取消任务 #{id}（{url}）。"},
    "cancelled.run": {"en": "Cancelled run #{id} ({url}).", "zh": "已取消流程 #{id}（{url}）。"},
    "cancel.terminal": {
        "en": "{kind} #{id} is already {status}; there is nothing to cancel ({url}).",
        "zh": "{kind} #{id} 已经{status}，无需取消（{url}）。",
    },
    "not_found": {"en": "I can't find {kind} #{id}.", "zh": "找不到{kind} #{id}。"},
    "status.task": {
        "en": "Task #{id} ({type}) is {status}{detail}. {url}",
        "zh": "任务 #{id}（{type}）{status}{detail}。{url}",
    },
    "status.run": {
        "en": "Run #{id} ({workflow}) is {status}{detail}. {url}",
        "zh": "流程 #{id}（{workflow}）{status}{detail}。{url}",
    },
    "status.none_for_order": {
        "en": "I found no task or run for order {order_no}.",
        "zh": "没有找到订单 {order_no} 的任务或流程。",
    },
    "nothing_to_cancel_for_order": {
        "en": "I found no running task or run for order {order_no}.",
        "zh": "没有找到订单 {order_no} 正在进行的任务或流程。",
    },
}

KIND = {"task": {"en": "Task", "zh": "任务"}, "run": {"en": "Run", "zh": "流程"}}
STATES = {
    "queued": {"en": "queued", "zh": "排队中"},
    "running": {"en": "running", "zh": "运行中"},
    "succeeded": {"en": "done", "zh": "已完成"},
    "failed": {"en": "failed", "zh": "失败"},
    "cancelled": {"en": "cancelled", "zh": "已取消"},
    "waiting_approval": {"en": "waiting for a person to approve", "zh": "等待人工审批"},
    "rejected": {"en": "rejected", "zh": "已被拒绝"},
}
DETAILS = {
    "paid": {"en": ": paid {amount} {currency}", "zh": "：已支付 {amount} {currency}"},
    "declined": {"en": ": payment declined ({reason})", "zh": "：付款被拒（{reason}）"},
    "audit": {
        "en": ": the model recommends {decision} (p={probability})",
        "zh": "：模型建议{decision}（概率 {probability}）",
    },
    "error": {"en": ": {error}", "zh": "：{error}"},
    "step": {"en": " at step '{step}'", "zh": "，当前步骤“{step}”"},
}
DECISIONS = {"approve": {"en": "approve", "zh": "通过"}, "reject": {"en": "reject", "zh": "拒绝"}}


def say(key: str, lang: str, **values: Any) -> str:
    """The message ``key`` in ``lang`` (English when there is no translation), formatted."""
    entry = MESSAGES[key]
    return entry.get(lang, entry["en"]).format(**values)


def word(table: dict[str, dict[str, str]], key: str, lang: str) -> str:
    """A translated word from one of the small tables above (the key itself if unknown)."""
    entry = table.get(key)
    if entry is None:
        return key
    return entry.get(lang, entry["en"])


__all__ = ["DECISIONS", "DETAILS", "KIND", "MESSAGES", "STATES", "say", "word"]
