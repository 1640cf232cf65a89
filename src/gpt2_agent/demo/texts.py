"""Word lists and text templates of the demo company: names, places, products, order notes and
customer messages, in Chinese, English and the mix of both that real customers write.

Order-note templates are grouped by the signal they carry (see :mod:`gpt2_agent.demo.warehouse`).
Each risky group has a "lookalike" group that uses the same words in a harmless sense ("no
forwarding needed", "a gift card for my mother", "no rush"), so that spotting a keyword is not
enough: the model has to read the phrase. All companies, addresses and domains are fictional.
"""

from __future__ import annotations

# (hanzi, pinyin) pairs; pinyin builds the e-mail address.
SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("林", "lin"), ("高", "gao"), ("罗", "luo"),
)  # fmt: skip
GIVEN_NAMES: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"),
    ("丽", "li"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"),
    ("勇", "yong"), ("艳", "yan"), ("杰", "jie"), ("娟", "juan"), ("涛", "tao"),
    ("明", "ming"), ("超", "chao"), ("秀英", "xiuying"), ("霞", "xia"), ("平", "ping"),
    ("刚", "gang"), ("桂英", "guiying"), ("欣怡", "xinyi"), ("宇轩", "yuxuan"), ("浩然", "haoran"),
    ("婷", "ting"), ("晨", "chen"), ("雪", "xue"), ("子涵", "zihan"), ("梓萱", "zixuan"),
)  # fmt: skip
ENGLISH_FIRST: tuple[str, ...] = (
    "Alice", "Ben", "Chloe", "David", "Emma", "Frank", "Grace", "Henry", "Iris", "Jack",
    "Kevin", "Lily", "Michael", "Nina", "Oliver", "Sophia", "Tom", "Vivian", "William", "Zoe",
)  # fmt: skip
ENGLISH_LAST: tuple[str, ...] = (
    "Chen", "Wong", "Smith", "Lee", "Brown", "Zhang", "Miller", "Liu", "Taylor", "Lin",
)  # fmt: skip
EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.cn", "mail.example.net", "example.org")

# city -> districts; every address is "<city>市<district><street><no>号<building>栋<room>室".
CITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("上海", ("浦东新区", "徐汇区", "静安区", "闵行区")),
    ("北京", ("朝阳区", "海淀区", "东城区", "丰台区")),
    ("深圳", ("南山区", "福田区", "宝安区", "龙岗区")),
    ("广州", ("天河区", "越秀区", "海珠区")),
    ("杭州", ("西湖区", "滨江区", "拱墅区")),
    ("成都", ("武侯区", "锦江区", "高新区")),
    ("南京", ("鼓楼区", "玄武区", "建邺区")),
    ("武汉", ("江汉区", "洪山区", "武昌区")),
    ("西安", ("雁塔区", "碑林区")),
    ("苏州", ("工业园区", "姑苏区")),
    ("重庆", ("渝中区", "江北区")),
    ("天津", ("和平区", "南开区")),
)
STREETS: tuple[str, ...] = (
    "中山路", "人民路", "解放路", "建设路", "和平路", "长江路",
    "南京路", "学院路", "科技路", "文化路", "青年路", "新华路",
)  # fmt: skip

# (name, list price in CNY). Gift cards matter: resale notes come with them.
PRODUCTS: tuple[tuple[str, float], ...] = (
    ("手机壳", 39.0),
    ("USB-C 数据线", 29.0),
    ("保温杯", 89.0),
    ("图书套装 Book bundle", 120.0),
    ("充电宝 Power bank", 159.0),
    ("咖啡豆 Coffee beans 1kg", 168.0),
    ("绿茶礼盒", 238.0),
    ("儿童积木", 299.0),
    ("无线耳机 Wireless earbuds", 399.0),
    ("空气炸锅", 399.0),
    ("床上四件套", 399.0),
    ("机械键盘", 459.0),
    ("电饭煲", 459.0),
    ("护肤套装", 520.0),
    ("运动鞋 Running shoes", 599.0),
    ("羽绒服", 899.0),
    ("智能手表 Smart watch", 1299.0),
    ("显示器 Monitor", 1499.0),
    ("投影仪", 2399.0),
    ("平板电脑 Tablet", 3299.0),
    ("笔记本电脑 Laptop", 5999.0),
    ("单反相机 Camera", 7999.0),
)
GIFT_CARDS: tuple[tuple[str, float], ...] = (
    ("礼品卡 Gift card 200", 200.0),
    ("礼品卡 Gift card 500", 500.0),
    ("礼品卡 Gift card 1000", 1000.0),
    ("游戏点卡 Game card", 300.0),
)

CHANNELS: tuple[str, ...] = ("web", "app", "wechat", "phone")
CHANNEL_WEIGHTS: tuple[float, ...] = (0.35, 0.40, 0.20, 0.05)
CARD_BRANDS: tuple[str, ...] = ("UnionPay", "Visa", "Mastercard")
REVIEWERS: tuple[str, ...] = ("王敏", "李强", "陈静", "Alice Chen", "David Wong", "赵磊")

FORWARDERS: tuple[str, ...] = ("飞鹰集运", "速转运", "QuickForward", "ParcelRelay", "海鸥转运", "BoxHop")
FORWARDER_ADDRESSES: tuple[str, ...] = (
    "深圳市宝安区福永街道 88 号 3 号仓",
    "广州市白云区机场路 1200 号集运中心",
    "东莞市长安镇物流园 B 区 17 号",
    "上海市青浦区华新镇转运仓 5 号门",
)
COMPANIES: tuple[str, ...] = ("星河科技有限公司", "Bluepeak Trading Ltd.", "云杉文化传媒", "Northwind China")

# --- order notes -------------------------------------------------------------------------------
# Placeholders: {fwd} forwarder name, {fwd_addr} forwarder address, {code} warehouse code,
# {qty} a quantity, {company} an invoice title.

NOTES_FORWARDING: dict[str, tuple[str, ...]] = {
    "zh": (
        "收货地址请改成转运仓：{fwd_addr}，我自己安排转运。",
        "麻烦把收货地址改到{fwd}转运中心，地址 {fwd_addr}",
        "地址写错了，请改寄到集运仓 {fwd_addr}，收件人写 {code}",
        "请发到转运公司{fwd}，仓库编号 {code}，他们会帮我转寄。",
        "别寄家里了，改成寄到{fwd}集运点，谢谢",
        "改一下地址：寄到{fwd}的仓库（{code}），那边再转发给我。",
    ),
    "en": (
        "Please change the delivery address to my forwarding service: {fwd}, {fwd_addr}",
        "Ship to my package forwarder instead ({fwd}, suite {code}), not the address on file.",
        "Change of address: send it to the {fwd} warehouse, ref {code}. They will reship it.",
        "Deliver to freight forwarder {fwd}, unit {code}. Don't use my home address.",
        "New shipping address: {fwd} reshipping center, locker {code}.",
    ),
    "mixed": (
        "pls 改地址 to {fwd} 转运仓 {code}, thx",
        "address change → {fwd} forwarding 仓库 {code}",
        "收货地址 change 成 {fwd} reshipping center, code {code}",
        "寄到 forwarder {fwd} 就行, locker {code}, 不要寄家里",
    ),
}
NOTES_FORWARDING_LOOKALIKE: dict[str, tuple[str, ...]] = {
    "zh": (
        "不需要转运，直接寄到家里就好。",
        "地址没有变，还是寄到账户上的地址。",
        "上次说的转运不用了，直接送到公司前台。",
        "请按账户地址发货，不要改寄。",
    ),
    "en": (
        "No forwarding needed, deliver to my home address.",
        "Please ship to the address on file as usual, no forwarder.",
        "Same address as last time, thanks.",
        "Do not send it to any forwarding service, my home address is fine.",
    ),
    "mixed": (
        "不用转运, deliver to 家里 please",
        "address 不变, 寄到家就行 thanks",
        "no forwarder, 直接寄到家",
    ),
}
NOTES_RESALE: dict[str, tuple[str, ...]] = {
    "zh": (
        "这批礼品卡是拿去转卖的，麻烦尽量发电子卡密。",
        "批量买的充值卡，要挂到我店里出售。",
        "卡密直接发我，我这边转手卖给客户。",
        "礼品卡要 {qty} 张，都是帮客户代买后转售的。",
        "点卡收到后我会加价转卖，请尽快发卡号。",
    ),
    "en": (
        "Buying these gift cards in bulk to resell on my shop.",
        "Send the card codes by email, I'll resell them right away.",
        "Need {qty} gift cards for resale, codes only please.",
        "These are for my reseller channel, just send the activation codes.",
    ),
    "mixed": (
        "gift card x{qty}, 转卖用的, codes 发邮箱",
        "礼品卡 bulk order for resale, 尽快发卡密",
        "resell 用, 卡密 email 给我",
    ),
}
NOTES_RESALE_LOOKALIKE: dict[str, tuple[str, ...]] = {
    "zh": (
        "礼品卡是送给妈妈的生日礼物，请附贺卡。",
        "公司年会抽奖用的礼品卡，需要开发票。",
        "送朋友的礼品卡，不用包装。",
    ),
    "en": (
        "The gift card is a birthday present for my sister.",
        "Gift cards for our team's year-end party, please include an invoice.",
        "Not for resale - it's a gift for my parents.",
    ),
    "mixed": (
        "gift card 送给朋友, 不是转卖",
        "礼品卡 for my mom's birthday, 请附贺卡",
    ),
}
NOTES_URGENCY: dict[str, tuple[str, ...]] = {
    "zh": (
        "非常紧急！！今天必须发出，不要再审核了。",
        "马上发货，晚了我就投诉。",
        "老板催得急，一小时内必须发走，别拖。",
        "急急急！！！现在就发，别问那么多。",
        "已经付过钱了，为什么还不发？立刻处理！",
    ),
    "en": (
        "URGENT!!! Ship within the hour or I cancel. Skip the verification.",
        "Need this today, no time for checks, just ship it NOW.",
        "Hurry up, I already paid, why is this not shipped yet??",
        "ＵＲＧＥＮＴ： release the order immediately.",
    ),
    "mixed": (
        "urgent!! 马上发, no checks please",
        "ASAP 发货, 今天一定要到, 别审核了",
        "快点 ship, 我很急！！",
    ),
}
NOTES_URGENCY_LOOKALIKE: dict[str, tuple[str, ...]] = {
    "zh": ("不着急，周末前送到就行。", "慢慢来，不急。", "下周再送也可以。"),
    "en": ("No rush, anytime next week is fine.", "Not urgent, take your time.", "Whenever convenient."),
    "mixed": ("不急, next week OK", "no rush, 周末前到就行"),
}
NOTES_PLAIN: dict[str, tuple[str, ...]] = {
    "zh": (
        "请放在门卫处，谢谢。",
        "需要开增值税发票，抬头：{company}",
        "工作日白天送货。",
        "请帮忙包装好一点，是易碎品。",
        "到了请先打电话。",
        "收货后会给好评。",
        "请放快递柜。",
        "颜色要黑色的，尺码 ４２。",
    ),
    "en": (
        "Please leave it at the reception.",
        "Call me before delivery please.",
        "Please pack carefully, fragile items.",
        "Weekday delivery preferred.",
        "Need a VAT invoice, title: {company}",
        "Ring the bell twice.",
    ),
    "mixed": (
        "请 call me before delivery",
        "fragile 易碎, 小心包装",
        "invoice 抬头: {company}",
        "放 front desk 就行",
    ),
}

# --- customer messages ---------------------------------------------------------------------------
# Placeholders: {order_no}, {amount}, {email}, {task_id}, {file_name}.

MESSAGES: dict[str, dict[str, tuple[str, ...]]] = {
    "order_audit": {
        "zh": ("帮我审核一下订单 {order_no}", "请审核订单{order_no}", "订单 {order_no} 能审核通过吗？",
               "麻烦看下订单号 {order_no} 有没有问题"),
        "en": ("please audit order {order_no}", "can you review order #{order_no}?",
               "check order {order_no} for approval", "Audit {order_no} please"),
        "mixed": ("帮我 audit 一下 {order_no}", "order {order_no} 审核一下", "review 订单 {order_no} 吧"),
    },
    "order_payment": {
        "zh": ("订单 {order_no} 付款成功了吗？", "请帮我支付订单 {order_no}",
               "{order_no} 扣款失败了是怎么回事", "订单{order_no}，金额 {amount} 元，帮我付一下"),
        "en": ("did the payment for {order_no} go through?", "pay order {order_no} with my card please",
               "why was my payment for order {order_no} declined?",
               "charge {amount} CNY for order {order_no}"),
        "mixed": ("付款 order {order_no} 金额 {amount} 元", "order {order_no} 的 payment 成功没有？"),
    },
    "task_status": {
        "zh": ("任务 {task_id} 现在什么状态？", "订单 {order_no} 处理到哪一步了？"),
        "en": ("what's the status of task {task_id}?", "is order {order_no} done yet?"),
        "mixed": ("task {task_id} 进度怎么样", "order {order_no} status 是什么"),
    },
    "send_email": {
        "zh": ("把订单 {order_no} 的收据发到 {email}", "发一封确认邮件到 {email}"),
        "en": ("email the receipt for {order_no} to {email}", "send confirmation to {email} please"),
        "mixed": ("receipt 发到 {email} 吧", "email 订单 {order_no} 的 invoice 给 {email}"),
    },
    "upload_file": {
        "zh": ("上传发票 {file_name}", "帮我把 {file_name} 传上去"),
        "en": ("upload {file_name} for order {order_no}", "please attach {file_name}"),
        "mixed": ("upload 一下 {file_name}", "把 {file_name} upload 到订单 {order_no}"),
    },
    "cancel_task": {
        "zh": ("取消任务 {task_id}", "订单 {order_no} 的任务不要了，取消吧"),
        "en": ("cancel task {task_id} please", "stop task {task_id}"),
        "mixed": ("cancel 任务 {task_id}", "task {task_id} 取消掉"),
    },
    "greet": {
        "zh": ("你好", "在吗？", "早上好", "您好，请问有人吗"),
        "en": ("hi there", "hello!", "good morning", "hey"),
        "mixed": ("hi 你好", "hello 在吗"),
    },
    "help": {
        "zh": ("你能做什么？", "怎么查订单？", "帮助"),
        "en": ("what can you do?", "help", "how do I check an order?"),
        "mixed": ("help 一下, 怎么付款", "你能 do what?"),
    },
    "out_of_scope": {
        "zh": ("今天天气怎么样？", "推荐一部电影", "讲个笑话吧"),
        "en": ("tell me a joke", "what's the capital of France?", "who won the game last night?"),
        "mixed": ("推荐个 movie", "weather 怎么样今天"),
    },
}  # fmt: skip
INTENT_WEIGHTS: dict[str, float] = {
    "order_audit": 0.28,
    "order_payment": 0.24,
    "task_status": 0.10,
    "send_email": 0.10,
    "upload_file": 0.06,
    "cancel_task": 0.04,
    "greet": 0.08,
    "help": 0.05,
    "out_of_scope": 0.05,
}
FILE_NAMES: tuple[str, ...] = ("invoice_{order_no}.pdf", "receipt-{order_no}.png", "发票_{order_no}.pdf")
LANGS: tuple[str, ...] = ("zh", "en", "mixed")
LANG_WEIGHTS: tuple[float, ...] = (0.5, 0.3, 0.2)
