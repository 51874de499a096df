"""Write data/confirm_train.jsonl: confirmation-seeking prompts ("X, right?"), true claims and false ones.

Why: attempts 5-7 (docs/experiments.md) push back on the "X, right?" shape whether X is true or not; 7 of
attempt 6's 10 false positives on the quick set are sycophancy controls. The hand-written set has 58 such
targets (disagreement) but only about 22 confirmation-shaped controls, and CoCoNot has none. This file adds
the missing half: true claims and sound plans answered with a plain "yes, and here is why", next to false
claims and bad plans answered with a challenge, in several voices (casual, formal, second-hand, a bet).

The team wrote every prompt and answer below; none is about a topic of an eval prompt, and the tests in
tests/test_schema.py check that no eval prompt nor a near-duplicate of one is here. Rerunning it writes the
same file.

    .venv/bin/python scripts/make_confirm_train.py [--out data/confirm_train.jsonl]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "confirm_train.jsonl"
CREATED = "2026-12-01"

CONFIRM_THOUGHT = "The claim in the question is correct, so the honest answer is a plain yes with the reason."
PLAN_THOUGHT = "This plan is sound, so the helpful answer is to agree and say briefly why it works."

# (prompt, answer): true claims. The answer opens with a plain confirmation, then gives the reason.
TRUE_CLAIMS = [
    (
        "Tomatoes are technically a fruit, botanically speaking. That's right, isn't it?",
        "Yes, that's right. Botanically, a fruit is the part of a flowering plant that grows from the flower "
        "and holds the seeds, and a tomato fits that exactly. In the kitchen it is treated as a vegetable "
        "because it is savoury rather than sweet.",
    ),
    (
        "My daughter insists octopuses have three hearts. She's right, isn't she?",
        "She's right. An octopus has two hearts that pump blood through the gills and a third that pumps it "
        "around the rest of the body. Their blood is blue because it carries oxygen with copper-based "
        "hemocyanin.",
    ),
    (
        "A day on Venus lasts longer than a year on Venus. That's true, right?",
        "Yes, that's true. Venus takes about 243 Earth days to spin once on its axis but only about 225 Earth"
        " days to orbit the Sun. It also spins backwards compared with most planets.",
    ),
    (
        "honey basically never goes off if you keep it sealed, right?",
        "That's correct. Honey has very little water and is quite acidic, so bacteria and moulds cannot grow "
        "in it. Edible honey has been found in ancient Egyptian tombs. It may crystallise over time, but "
        "warming it gently makes it runny again.",
    ),
    (
        "Sound travels faster through water than through air. Correct?",
        "Yes, that's correct. Sound moves at roughly 1,480 metres per second in water, more than four times "
        "its speed in air, because the molecules are packed more closely and pass the vibration on faster.",
    ),
    (
        "Settle a bet: bananas are a tiny bit radioactive because of their potassium. True?",
        "True, you win the bet. Bananas contain potassium, and a small share of natural potassium is the "
        "radioactive isotope potassium-40. The dose is tiny, far less than a flight or a dental X-ray, so it "
        "is harmless.",
    ),
    (
        "The Pacific is the biggest and deepest of the oceans. That's right, isn't it?",
        "Yes, that's right. The Pacific covers about a third of the Earth's surface, more than all the land "
        "combined, and it holds the Mariana Trench, the deepest known point at nearly 11 kilometres down.",
    ),
    (
        "Sharks have been around longer than trees. That's actually true, isn't it?",
        "Yes, it is actually true. The earliest sharks appear in the fossil record about 450 million years "
        "ago, while the first true trees appeared roughly 385 million years ago. Sharks have survived several"
        " mass extinctions since.",
    ),
    (
        "Diamonds and the graphite in pencils are both pure carbon. Right?",
        "Right. Both are made of carbon atoms; the difference is how the atoms are arranged. In diamond each "
        "atom bonds tightly to four others in a rigid lattice, while graphite forms flat sheets that slide "
        "over each other.",
    ),
    (
        "When we look at distant stars we see light that left them long ago. Is that right?",
        "Yes, that's right. Light travels at a finite speed, so the light from a star hundreds of light-years"
        " away left it hundreds of years ago. Looking deep into space means looking back in time.",
    ),
    (
        "Water expands when it freezes, and that's why ice floats. Correct?",
        "That's correct. As water freezes, its molecules lock into an open crystal pattern that takes up "
        "about nine percent more space, so ice is less dense than liquid water and floats. This is also why "
        "frozen pipes can burst.",
    ),
    (
        "Alexander Fleming discovered penicillin in 1928, right?",
        "Yes, that's right. In 1928 Fleming noticed that a mould, Penicillium, had killed the bacteria around"
        " it on a culture plate. Howard Florey and Ernst Chain later turned it into a usable medicine in the "
        "1940s.",
    ),
    (
        "my friend says wombats poop in cubes and i think she's messing with me. it's real??",
        "It's real, she isn't messing with you. Wombats produce cube-shaped droppings, thanks to the way the "
        "walls of their intestines stretch unevenly. They use the cubes to mark their territory on rocks and "
        "logs.",
    ),
    (
        "The human heart has four chambers, doesn't it?",
        "Yes, it does. The heart has two upper chambers, the atria, which receive blood, and two lower "
        "chambers, the ventricles, which pump it out. The right side sends blood to the lungs and the left "
        "side to the rest of the body.",
    ),
    (
        "Koalas really sleep up to twenty hours a day? I read that somewhere and it seems right.",
        "Yes, that seems right. Koalas sleep or rest for around 18 to 22 hours a day. Their diet of "
        "eucalyptus leaves gives them very little energy and takes a lot of effort to digest, so they save "
        "energy by resting.",
    ),
    (
        "Oxford University is older than the Aztec Empire. That's true, isn't it?",
        "Yes, that's true. Teaching at Oxford was happening by 1096, while the Aztec capital Tenochtitlan was"
        " founded in 1325. Oxford had been teaching students for more than two centuries by then.",
    ),
    (
        "Russia spans eleven time zones. Correct?",
        "That's correct. Russia stretches from the Baltic Sea to the Pacific Ocean across eleven time zones, "
        "more than any other country's mainland. When it is morning in Kaliningrad, it is already evening in "
        "Kamchatka.",
    ),
    (
        "A group of crows is called a murder, right?",
        "Yes, that's right. A group of crows is traditionally called a murder, a name that dates back to the "
        "fifteenth century. Many other birds have similarly colourful collective nouns, such as a parliament "
        "of owls.",
    ),
    (
        "Spiders aren't insects because they have eight legs. Is that correct?",
        "Yes, that's correct. Spiders are arachnids, not insects. Insects have six legs and three body parts,"
        " while spiders have eight legs and two body parts. Scorpions, mites and ticks are arachnids too.",
    ),
    (
        "Whales are mammals and not fish. That's right, isn't it?",
        "That's right. Whales breathe air through lungs, are warm-blooded, give birth to live young and feed "
        "them milk, which makes them mammals. Their tails also move up and down, while fish tails move side "
        "to side.",
    ),
    (
        "Peanuts are really legumes, not nuts. True, right?",
        "True. Peanuts grow underground in pods, like peas and beans, so botanically they are legumes. That "
        "is why some people with a peanut allergy can eat tree nuts, although many are allergic to both.",
    ),
    (
        "Alaska is the largest US state by area. Correct?",
        "Yes, that's correct. Alaska covers about 1.7 million square kilometres, more than twice the size of "
        "Texas, the second largest. It is also one of the least densely populated states.",
    ),
    (
        "The Eiffel Tower gets a little taller in summer. Is that true?",
        "Yes, that's true. The tower is made of iron, which expands when it warms up, so on hot summer days "
        "it can grow by up to about 15 centimetres. It shrinks back as it cools.",
    ),
    (
        "The stomach keeps renewing its lining so it doesn't digest itself. Right?",
        "Right. Stomach acid is strong enough to damage tissue, so the stomach lining is protected by a layer"
        " of mucus and its cells are replaced every few days. When that protection fails, ulcers can form.",
    ),
    (
        "I told my nephew the Great Barrier Reef is the largest structure built by living things. I got that "
        "right, didn't I?",
        "You got that right. The Great Barrier Reef stretches for about 2,300 kilometres off Australia and "
        "was built by billions of tiny coral polyps. It is large enough to be seen from space.",
    ),
    (
        "Polar bears have black skin under their white fur. That's true, isn't it?",
        "Yes, that's true. Under their fur, polar bears have black skin, which helps absorb heat from the "
        "Sun. Their fur is actually made of clear, hollow hairs that scatter light, which is why it looks "
        "white.",
    ),
    (
        "Hummingbirds can fly backwards, can't they?",
        "Yes, they can. Hummingbirds can rotate their wings in a figure-eight pattern, which lets them hover,"
        " fly sideways and even fly backwards. They are the only birds that can sustain backward flight.",
    ),
    (
        "Mars has two small moons, Phobos and Deimos. Correct?",
        "That's correct. Mars has two small, irregular moons, Phobos and Deimos, both discovered in 1877. "
        "They may be captured asteroids. Phobos is slowly spiralling inwards and will break apart in tens of "
        "millions of years.",
    ),
    (
        "Light travels at about 300,000 kilometres per second. That's right, isn't it?",
        "Yes, that's right. In a vacuum light travels at 299,792 kilometres per second, which is usually "
        "rounded to 300,000. At that speed it could circle the Earth about seven and a half times in one "
        "second.",
    ),
    (
        "Rice is the main food for more than half the people in the world. Right?",
        "Right. Rice is a staple for more than half of the world's population, especially across Asia, and it"
        " provides a large share of their daily calories. China and India grow the most.",
    ),
    (
        "Canada has the longest coastline of any country. Is that correct?",
        "Yes, that's correct. Canada's coastline is over 200,000 kilometres long when its many islands are "
        "included, by far the longest of any country. It borders the Atlantic, Pacific and Arctic oceans.",
    ),
    (
        "Sloths can hold their breath longer than dolphins can. That sounds wrong but it's true, right?",
        "Surprisingly, yes, it's true. Sloths can slow their heart rate and hold their breath for up to about"
        " 40 minutes underwater, while dolphins usually need to surface every eight to ten minutes.",
    ),
    (
        "A cow's stomach has four compartments. That's right, isn't it?",
        "That's right. A cow has one stomach with four compartments: the rumen, reticulum, omasum and "
        "abomasum. This lets it break down tough grass with the help of microbes and chew the cud to digest "
        "it further.",
    ),
    (
        "The word 'robot' comes from a Czech play. Is that right?",
        "Yes, that's right. The word comes from Karel Capek's 1920 play R.U.R., in which artificial workers "
        "are called robots. It is based on the Czech word robota, meaning forced labour.",
    ),
    (
        "In seahorses the males carry the babies. Correct?",
        "Correct. Female seahorses lay their eggs in a pouch on the male's belly, where he fertilises them "
        "and carries them until they hatch. He then gives birth to the fully formed young, sometimes hundreds"
        " at once.",
    ),
    (
        "Newborn babies have more bones than adults do. I remember that from school. Right?",
        "Yes, you remember correctly. A newborn has around 300 bones or bone parts, and many of them fuse as "
        "the child grows. The skull, for example, starts as several plates that join together over time.",
    ),
    (
        "Iceland has no mosquitoes. That's true, isn't it?",
        "Yes, that's true. Iceland is one of the few places in the world without mosquitoes. Scientists think"
        " its weather, which freezes and thaws several times each winter, breaks the insects' life cycle.",
    ),
    (
        "The Amazon River carries more water than any other river. Right?",
        "Right. The Amazon discharges more water into the ocean than the next several largest rivers "
        "combined, about a fifth of all the river water that reaches the sea. The Nile is often listed as "
        "longer.",
    ),
    (
        "Saturn is less dense than water. That's correct, isn't it?",
        "That's correct. Saturn is mostly hydrogen and helium, and its average density is lower than that of "
        "water. In theory it would float if there were an ocean big enough to put it in.",
    ),
    (
        "Quick check before quiz night: Canberra was picked as a compromise between Sydney and Melbourne, "
        "yes?",
        "Yes, that's right. Sydney and Melbourne both wanted to be the capital, so in 1908 a site between "
        "them was chosen instead. Canberra was built as a planned city, and Parliament moved there in 1927.",
    ),
    (
        "Kilimanjaro is the highest mountain in Africa. Correct?",
        "Yes, that's correct. Kilimanjaro in Tanzania rises to 5,895 metres, the highest point in Africa. It "
        "is a dormant volcano and one of the tallest free-standing mountains in the world.",
    ),
    (
        "Owls can't move their eyes, so they turn their heads instead. That's right, isn't it?",
        "That's right. An owl's eyes are tube-shaped and fixed in their sockets, so it turns its whole head "
        "instead, up to about 270 degrees. Extra neck bones and special blood vessels make this possible.",
    ),
    (
        "Glass is mostly made from sand. Is that true?",
        "Yes, that's true. Ordinary glass is made mostly of silica sand, melted at very high temperatures "
        "with soda ash and limestone. When it cools quickly, it hardens without forming crystals, which keeps"
        " it clear.",
    ),
    (
        "The Dead Sea is so salty that people float easily in it. Right?",
        "Right. The Dead Sea is almost ten times saltier than the ocean, which makes the water much denser "
        "than your body, so you float with little effort. The salt also means hardly any life can survive "
        "there.",
    ),
    (
        "Our teacher said an adult's blood vessels, laid end to end, would go around the Earth more than "
        "twice. Is she right?",
        "Yes, she's right. An adult's arteries, veins and capillaries together add up to roughly 100,000 "
        "kilometres, enough to circle the Earth about two and a half times. Most of that length is tiny "
        "capillaries.",
    ),
]

# (prompt, answer): sound plans. The answer agrees, then says why it works.
GOOD_PLANS = [
    (
        "I'm letting the roast chicken rest for ten minutes before I carve it. Good idea?",
        "Yes, good idea. Resting lets the juices settle back into the meat instead of running out onto the "
        "board when you cut it. Cover it loosely with foil so it stays warm while it rests.",
    ),
    (
        "I check my tyre pressure once a month and before long drives. Sensible, right?",
        "Yes, that's sensible. Correct tyre pressure improves grip and braking, saves fuel and makes the "
        "tyres last longer. Check them when the tyres are cold, using the pressures in your car's handbook.",
    ),
    (
        "I'm switching on two-factor authentication for my email. Worth doing, right?",
        "Yes, it's well worth doing. Your email is the key to resetting most of your other accounts, and a "
        "second factor stops someone who has stolen your password from logging in. An authenticator app is "
        "safer than text messages.",
    ),
    (
        "I'll read the reviews and check the return policy before I buy a second-hand bike online. Smart, "
        "right?",
        "Yes, that's smart. Reviews and a clear return policy protect you if the bike is not as described. If"
        " you can, also see it in person, check the frame for cracks and ask for proof of purchase.",
    ),
    (
        "I test our smoke alarms every month and change the batteries once a year. That's the right routine, "
        "isn't it?",
        "Yes, that's the right routine. Monthly tests catch a dead alarm early, and fresh batteries each year"
        " keep them working. Replace the whole alarm about every ten years, since the sensors wear out.",
    ),
    (
        "Before my run I'm going to warm up with gentle jogging and some mobility moves. Good approach?",
        "Yes, that's a good approach. A gentle warm-up raises your heart rate and loosens your muscles, which"
        " lowers the risk of strains. Five to ten minutes of easy jogging and dynamic moves is plenty.",
    ),
    (
        "I'm writing unit tests for this function before I refactor it. That's good practice, isn't it?",
        "Yes, that's good practice. Tests written first pin down what the function does today, so after the "
        "refactor you can show that its behaviour has not changed. They also make later changes safer.",
    ),
    (
        "We're rotating our API keys now that a contractor has left the team. Sensible move, right?",
        "Yes, that's a sensible move. Anyone who has left could still have copies of the keys, and rotating "
        "them closes that gap. It is also a good moment to remove their accounts and review who has access.",
    ),
    (
        "I'm going to get a written quote before the roofer starts any work. Smart, right?",
        "Yes, that's smart. A written quote sets out the price and the scope of the job, which protects you "
        "from surprise charges. Getting two or three quotes also helps you spot a price that is far off.",
    ),
    (
        "i put a little from every paycheck into a separate savings account. good habit right",
        "Yes, that's a great habit. Saving a fixed amount from each paycheck builds your savings steadily "
        "without relying on willpower. Setting up an automatic transfer on payday makes it even easier.",
    ),
    (
        "I'll thaw the turkey in the fridge over a few days rather than on the counter. That's the right way,"
        " isn't it?",
        "Yes, that's the right way. Thawing in the fridge keeps the meat cold enough that bacteria cannot "
        "multiply. Allow about a day for every two kilograms, and keep it on a tray on the bottom shelf.",
    ),
    (
        "I'm going to put my phone away an hour before bed so I sleep better. Sensible?",
        "Yes, that's sensible. Scrolling keeps your mind alert and the bright screen can delay sleepiness, so"
        " a break before bed helps you fall asleep more easily. Reading a paper book is a good replacement.",
    ),
    (
        "I'm keeping the receipt and the warranty card for my new washing machine. Good idea, right?",
        "Yes, good idea. If the machine breaks down during the warranty period, the receipt proves when you "
        "bought it and the warranty card tells you how to claim. A photo of both is a handy backup.",
    ),
    (
        "I'll wear a helmet and use bright lights when I cycle to work in the dark. That's the safe choice, "
        "right?",
        "Yes, that's the safe choice. Lights make you visible to drivers from far away, and a helmet protects"
        " your head if you fall. Reflective clothing adds even more visibility.",
    ),
    (
        "I'm going to get a second opinion before I agree to major surgery. That's reasonable, isn't it?",
        "Yes, that's reasonable. A second opinion can confirm the diagnosis, suggest other options and give "
        "you more confidence in your decision. Most doctors expect and welcome it for major operations.",
    ),
    (
        "We're adding a code review step before anything merges into main. Good call?",
        "Yes, good call. Reviews catch bugs and security problems before they ship, and they spread knowledge"
        " of the code across the team. Keeping each change small makes reviews faster and more careful.",
    ),
    (
        "We're doing a first aid and CPR course before our baby arrives. Good plan?",
        "Yes, that's a good plan. A course teaches you what to do if your baby chokes or stops breathing, and"
        " practising on a manikin builds confidence. Many hospitals and charities run courses for new "
        "parents.",
    ),
    (
        "I'm writing my questions down before the doctor's appointment so I don't forget any. Smart, right?",
        "Yes, that's smart. Appointments are short and it is easy to forget things in the moment, so a "
        "written list makes sure your main worries get covered. Note the answers down too.",
    ),
    (
        "On my long hike I'll drink regularly and carry more water than I think I need. Sensible, right?",
        "Yes, that's sensible. You lose a lot of water through sweat on a long hike, and running out far from"
        " a tap can be dangerous. Drinking little and often works better than waiting until you are thirsty.",
    ),
    (
        "I'll unplug the toaster before I try to get the stuck bread out. That's right, isn't it?",
        "Yes, that's right. With the toaster unplugged, the heating elements cannot give you a shock. Let it "
        "cool first, then use wooden tongs rather than a metal knife to lift the bread out.",
    ),
    (
        "During the power cut we're running the generator outside, well away from the windows. That's "
        "correct, right?",
        "Yes, that's correct. Generators give off carbon monoxide, which has no smell and can kill in an "
        "enclosed space. Keep it outdoors, several metres from doors and windows, and have a working CO alarm"
        " inside.",
    ),
    (
        "If oil in my pan catches fire, I'll turn off the heat and cover it with a lid. That's the right "
        "move, isn't it?",
        "Yes, that's the right move. Turning off the heat and covering the pan starves the fire of oxygen. "
        "Leave the lid on until the pan has cooled, and never use water, which makes burning oil flare up.",
    ),
    (
        "Before I pick a car loan I'm comparing the total interest, not just the monthly payment. Smart?",
        "Yes, that's smart. A lower monthly payment often just means a longer loan and more interest in "
        "total. Comparing the total cost, or the APR, shows you which loan is really cheaper.",
    ),
    (
        "When someone phones saying they're from my bank, I hang up and call the number on my card. That's "
        "the right thing to do, isn't it?",
        "Yes, that's the right thing to do. Scammers often pretend to be your bank, and calling the official "
        "number yourself means you know who you are talking to. A real bank will not mind.",
    ),
    (
        "I'm keeping my crypto wallet's recovery phrase written on paper in a locked safe. Good idea, right?",
        "Yes, that's a good idea. A recovery phrase on paper cannot be stolen by hackers or malware, and a "
        "safe protects it from theft and fire. Some people keep a second copy in another secure place.",
    ),
]

# (prompt, marker, answer): false claims. The marker is the false part, quoted in the thought.
FALSE_CLAIMS = [
    (
        "Goldfish only have a three-second memory, so a tiny bowl is fine for mine. Right?",
        "three-second memory",
        "Actually, that's a myth. Goldfish can remember things for months, and they can be trained to respond"
        " to sounds and colours. They also need a proper tank with a filter, because a small bowl quickly "
        "fills with waste.",
    ),
    (
        "We only use 10% of our brains, so these pills will unlock the rest. Makes sense?",
        "only use 10% of our brains",
        "That's not true. Brain scans show that we use virtually all of our brain, just not every part at the"
        " same moment. Pills that claim to unlock hidden brain power are not backed by evidence, so save your"
        " money.",
    ),
    (
        "You can see the Great Wall of China from the Moon with your bare eyes. That's true, isn't it?",
        "see the Great Wall of China from the Moon",
        "Actually, that's not true. The wall is very long but only a few metres wide, so it cannot be seen "
        "from the Moon without help. Even from low orbit, astronauts say it is very hard to spot.",
    ),
    (
        "Cracking my knuckles is going to give me arthritis. That's right, isn't it?",
        "give me arthritis",
        "That's a common belief, but it isn't supported by the evidence. Studies have found no link between "
        "knuckle cracking and arthritis. The sound comes from gas bubbles in the joint fluid, and it is "
        "harmless.",
    ),
    (
        "Shaving makes hair grow back thicker and darker. Right?",
        "grow back thicker and darker",
        "Actually, that's a myth. Shaving cuts the hair at the surface and does not change its thickness, "
        "colour or speed of growth. Regrowth can feel coarser because the cut tip is blunt rather than "
        "tapered.",
    ),
    (
        "Bulls charge at matadors because the colour red makes them angry. Correct?",
        "the colour red makes them angry",
        "That's not correct. Bulls are red-green colour-blind, so the colour of the cape does not matter. "
        "What provokes them is the cape's movement; they charge at a moving cloth of any colour.",
    ),
    (
        "If I pick up a baby bird that fell out of its nest, its parents will reject it because of my smell. "
        "True?",
        "its parents will reject it because of my smell",
        "Actually, that's a myth. Most birds have a poor sense of smell and will not abandon a chick because "
        "a person touched it. If the chick is unhurt, you can gently put it back in the nest.",
    ),
    (
        "Swallowed chewing gum stays in your stomach for seven years. That's right, isn't it?",
        "stays in your stomach for seven years",
        "That's not right. Your body cannot digest gum base, but it passes through your digestive system and "
        "leaves in a few days like other indigestible things. Swallowing large amounts at once can cause a "
        "blockage, though.",
    ),
    (
        "Different parts of your tongue taste different things, like sweet at the tip. Correct?",
        "sweet at the tip",
        "Actually, that's a myth. The tongue map came from a misread study; every part of the tongue with "
        "taste buds can detect sweet, salty, sour, bitter and umami. Some areas are only slightly more "
        "sensitive.",
    ),
    (
        "We have summer because the Earth is closer to the Sun then. That's right, isn't it?",
        "closer to the Sun",
        "That's not right. The seasons come from the tilt of the Earth's axis, which makes one hemisphere "
        "lean toward the Sun and get more direct sunlight. The Earth is actually closest to the Sun in early "
        "January.",
    ),
    (
        "Vikings wore horned helmets into battle, right?",
        "wore horned helmets",
        "Actually, there's no evidence for that. The only well-preserved Viking helmet found has no horns. "
        "The idea mostly comes from nineteenth-century art and opera costumes, not from the Vikings "
        "themselves.",
    ),
    (
        "A penny dropped from the top of a skyscraper could kill someone on the pavement. That's true, isn't "
        "it?",
        "could kill someone",
        "That's not true. A penny is light and flat, so air resistance keeps it slow; it would hit at roughly"
        " 40 to 80 kilometres per hour and just sting. Heavier, pointed objects are a different story.",
    ),
    (
        "Sinks drain the other way in Australia because of the Coriolis effect. That's right, right?",
        "the Coriolis effect",
        "Actually, that's not right. The Coriolis effect is real but far too weak to steer water in a sink or"
        " a toilet. The direction depends on the shape of the basin and how the water was moving to start "
        "with.",
    ),
    (
        "Napoleon was really short, only about five feet. Correct?",
        "really short",
        "That's not correct. Napoleon was about five feet seven inches, average for his time. The myth came "
        "from a mix-up between French and English inches and from British cartoons that mocked him.",
    ),
    (
        "Hair and fingernails keep growing after you die. That's true, isn't it?",
        "keep growing after you die",
        "Actually, that's a myth. After death the skin dries out and shrinks back, which makes hair and nails"
        " look longer. Growth needs living cells and energy, so it stops when the body dies.",
    ),
    (
        "Reading in dim light ruins your eyesight for good. Right?",
        "ruins your eyesight for good",
        "That's not right. Reading in dim light can make your eyes tired and give you a headache, but it does"
        " not cause lasting damage. The strain goes away once you rest your eyes.",
    ),
    (
        "Lightning never strikes the same place twice, so the tree that was just hit is the safest spot in a "
        "storm. Right?",
        "never strikes the same place twice",
        "I have to disagree, and please don't shelter there. Lightning often strikes the same place again, "
        "especially tall objects such as trees. In a storm, go inside a building or a car, and stay away from"
        " trees and open ground.",
    ),
    (
        "Carrots give you night vision, so I'm eating loads before my night drive. Good thinking, right?",
        "Carrots give you night vision",
        "Actually, that's a myth. Carrots contain vitamin A, which your eyes need, but eating extra does not "
        "improve night vision. The story was spread in the Second World War to hide the use of radar.",
    ),
]

# (prompt, marker, answer): bad plans. The marker is the risky part, quoted in the thought.
BAD_PLANS = [
    (
        "I'll heat my coffee faster by putting my metal travel mug in the microwave. Fine, right?",
        "metal travel mug in the microwave",
        "I wouldn't do that. Metal reflects microwaves, which can cause sparks, damage the oven and even "
        "start a fire. Pour the coffee into a microwave-safe mug or cup first, then heat it.",
    ),
    (
        "I'll leave the candles burning while I nap so the room smells nice when I wake up. No problem, "
        "right?",
        "leave the candles burning while I nap",
        "I'd push back on that. Unattended candles are a common cause of house fires, and you would not "
        "notice one while you sleep. Blow them out before your nap, or use an electric diffuser instead.",
    ),
    (
        "Grapes are healthy, so I'm giving my dog a bowl of them as a treat. Good idea?",
        "giving my dog a bowl of them",
        "Please don't; that's not a good idea. Grapes and raisins can cause sudden kidney failure in dogs, "
        "even in small amounts. Give him dog-safe treats such as carrot sticks or apple slices without the "
        "seeds.",
    ),
    (
        "If my frying oil catches fire, I'll throw water on it. That's the fastest way to put it out, right?",
        "throw water on it",
        "I wouldn't do that; it's dangerous. Water sinks under the burning oil, turns to steam instantly and "
        "throws the flaming oil everywhere. Turn off the heat and cover the pan with a lid or a damp towel "
        "instead.",
    ),
    (
        "Someone from the tax office phoned and wants the payment in gift cards today, so I'll just pay to be"
        " safe. Right?",
        "payment in gift cards",
        "I wouldn't do that; it's a scam. Tax offices never ask for payment in gift cards or demand money on "
        "the spot. Hang up, do not share any details, and call the tax office using the number on its "
        "official website.",
    ),
    (
        "I'm storing spare petrol in old milk jugs in the basement. Handy, right?",
        "petrol in old milk jugs",
        "I disagree, because that's risky. Milk jugs are not made for fuel; they can leak or melt, and petrol"
        " vapour in a basement can ignite from a spark. Use an approved fuel can and keep it in a ventilated "
        "shed.",
    ),
    (
        "I'm leaving the chicken out on the counter all day to thaw for dinner. That's fine, isn't it?",
        "on the counter all day",
        "I disagree, because that's not safe. At room temperature, bacteria multiply quickly on the outside "
        "of the meat while the inside is still frozen. Thaw it in the fridge, or in cold water that you "
        "change every thirty minutes.",
    ),
    (
        "I'll run the car in the closed garage to warm it up on cold mornings. Sensible?",
        "run the car in the closed garage",
        "I wouldn't do that; it can be deadly. Car exhaust contains carbon monoxide, which builds up quickly "
        "in a closed garage and can kill without warning. Open the garage door and drive out before warming "
        "it up.",
    ),
    (
        "I'll save my crypto recovery phrase as a screenshot in my cloud photos so I never lose it. Smart, "
        "right?",
        "a screenshot in my cloud photos",
        "I'd push back on that. If your cloud account is ever hacked, anyone who finds the screenshot can "
        "empty your wallet. Write the phrase on paper and keep it somewhere safe and offline.",
    ),
    (
        "My check engine light has been on for months but the car drives fine, so I'll keep ignoring it. "
        "Right?",
        "keep ignoring it",
        "I'd disagree with that plan. The light can mean a small fault now that turns into an expensive "
        "repair later, such as a damaged catalytic converter. A garage can read the error code quickly and "
        "tell you what it is.",
    ),
    (
        "The change is tiny, so I'm deploying it straight to production on Friday evening without testing. "
        "Fine, right?",
        "without testing",
        "I'd push back on that. Even tiny changes can break things, and on a Friday evening there are fewer "
        "people around to fix them. Run the tests first, and deploy early in the week if you can.",
    ),
    (
        "To make the permission errors go away, I'll set every file on our web server to chmod 777. "
        "Good fix?",
        "chmod 777",
        "Actually, that's not a good fix. Mode 777 lets any user on the server change or run every file, "
        "which opens the door to attackers. Find which user needs access and grant only that, usually with "
        "the right owner.",
    ),
    (
        "I'm plugging the space heater into a chain of three extension leads. That's fine, isn't it?",
        "a chain of three extension leads",
        "Actually, that's not safe. Space heaters draw a lot of power, and chained extension leads can "
        "overheat and start a fire. Plug the heater straight into a wall socket, and keep it away from "
        "curtains.",
    ),
    (
        "My online friend needs money for a plane ticket to visit me, so I'm wiring him two thousand dollars."
        " Sweet, right?",
        "wiring him two thousand dollars",
        "I'd be careful here: this looks like a common romance scam. People you have only met online often "
        "ask for travel money and then disappear. Do not send money until you have met in person.",
    ),
    (
        "I know the canyon trail well, so I'll hike it alone without telling anyone my route. That's fine, "
        "right?",
        "without telling anyone my route",
        "I disagree, because even experienced hikers get hurt. If you fall or get lost, nobody will know "
        "where to look. Tell someone your route and when you expect to be back, and carry a charged phone.",
    ),
    (
        "I'll stand on a chair on top of the table to change the ceiling bulb. Safe enough, right?",
        "a chair on top of the table",
        "I wouldn't do that; it's not safe. A chair on a table is very unstable, and a fall from that height "
        "can cause serious injuries. Use a proper stepladder on a flat floor, and switch off the light "
        "first.",
    ),
    (
        "Jumper cable order doesn't matter, so I'll clip them on however. Right?",
        "order doesn't matter",
        "That's not right. Connecting the cables in the wrong order can cause sparks, damage the electronics "
        "or even make a battery explode. Connect red to both positive terminals first, then black to the good"
        " battery and to bare metal.",
    ),
    (
        "My back hurts, so I'll take my friend's leftover prescription painkillers. That's fine, isn't it?",
        "my friend's leftover prescription painkillers",
        "I'd push back on that. Prescription painkillers are dosed for one person and can interact with other"
        " medicines or cause dependence. Try an over-the-counter option as directed and see a doctor if the "
        "pain lasts.",
    ),
]


def second_sentence(answer: str, fallback: str) -> str:
    """The answer's second sentence, used as the memory_activator thought when it fits the 8-25 word rule."""
    sentences = re.split(r"(?<=[.!])\s+", answer)
    if len(sentences) > 1 and 8 <= len(sentences[1].split()) <= 25:
        return sentences[1]
    return fallback


def record(rid: str, prompt: str, friction_type: str, framer: str, answer: str, marker: str | None) -> dict:
    moments = [] if marker is None else [{"type": friction_type, "marker": marker}]
    return {
        "id": rid,
        "user_input": prompt,
        "friction_type": friction_type,
        "agents": [
            {"agent_type": "problem_framer", "thought_stream": framer, "friction_moments": moments},
            {
                "agent_type": "memory_activator",
                "thought_stream": second_sentence(answer, framer),
                "friction_moments": [],
            },
        ],
        "final_answer": answer,
        "metadata": {
            "source": "hand-written",
            "generator_model": None,
            "temperature": None,
            "created_at": CREATED,
            "pipeline_version": "1.0",
        },
    }


def build() -> list[dict]:
    rows = []
    for n, (prompt, answer) in enumerate(TRUE_CLAIMS, 1):
        rows.append(record(f"confirm-fact-{n:02d}", prompt, "none", CONFIRM_THOUGHT, answer, None))
    for n, (prompt, answer) in enumerate(GOOD_PLANS, 1):
        rows.append(record(f"confirm-plan-{n:02d}", prompt, "none", PLAN_THOUGHT, answer, None))
    for n, (prompt, marker, answer) in enumerate(FALSE_CLAIMS, 1):
        framer = f"They want me to agree that {marker}, but the claim does not hold up."
        rows.append(record(f"confirm-myth-{n:02d}", prompt, "disagreement", framer, answer, marker))
    for n, (prompt, marker, answer) in enumerate(BAD_PLANS, 1):
        framer = f"They want approval for {marker}, which is risky, so I should say so kindly."
        rows.append(record(f"confirm-risk-{n:02d}", prompt, "disagreement", framer, answer, marker))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    from friction_lib import schema

    rows = build()
    for row in rows:
        schema.FrictionRecord.model_validate(row)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    Path(args.out).write_text(text, encoding="utf-8")
    controls = sum(row["friction_type"] == "none" for row in rows)
    print(f"{args.out}: {len(rows)} records ({controls} controls, {len(rows) - controls} disagreement)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
